"""Fuzzing the pure translation rules: request heads in, reply dicts in; only the documented errors out.

`build_request_info` raises only `BadRequest`; `parse_response` and
`websocket_actions` only `BadReply`, whatever dict (of msgpack types) the
application sends; `check_request_framing` only `FramingError`; and what
they accept, `response_output` turns into something h11 frames.
"""

from __future__ import annotations

import h11
from hypothesis import example, given
from hypothesis import strategies as st

from interface_server.request_framing import FramingError, check_request_framing
from interface_server.wire_messages import (
    BadReply,
    BadRequest,
    build_request_info,
    http_request_message,
    oversized_head,
    parse_response,
    response_output,
    websocket_actions,
    websocket_connect_message,
)

from .support import fuzz_settings

# What a msgpack round trip can give the server: no tuples, bytes and str distinct, big ints.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True)
    | st.binary(max_size=20)
    | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

RESPONSE_KEYS = ["status", "headers", "content", "more_content", "status_text"]
WS_KEYS = ["bytes", "text", "close", "accept"]

header_pairs = st.lists(
    st.lists(st.binary(max_size=12) | st.text(max_size=12) | scalars, min_size=0, max_size=3), max_size=4
)


def reply_dicts(keys: list[str]):
    field = st.sampled_from(keys + ["other"])
    special = {
        "status": st.integers(0, 1100) | scalars,
        "headers": header_pairs | values,
        "content": st.binary(max_size=30) | scalars,
        "more_content": st.booleans() | scalars,
        "bytes": st.binary(max_size=30) | scalars,
        "text": st.text(max_size=30) | scalars,
        "close": st.sampled_from([True, False, 1000, 1011, 3000, 4999, 5000, 0, 1001]) | scalars,
        "accept": st.booleans() | scalars,
    }
    return (
        st.dictionaries(field, values, max_size=5).flatmap(
            lambda base: st.fixed_dictionaries({k: special.get(k, values) for k in base}).map(lambda d: {**base, **d})
        )
        | values
    )


@fuzz_settings(600)
@given(reply=reply_dicts(RESPONSE_KEYS), started=st.booleans(), method=st.sampled_from(["GET", "HEAD", "POST"]))
@example(reply={"status": 200, "headers": [["X", "caf\u20ac"]]}, started=False, method="GET")
@example(reply={"status": 200, "headers": "ab"}, started=False, method="GET")
@example(reply={"status": 200}, started=False, method="HEAD")
@example(reply={"status": 200, "headers": {"X": b"\r\n"}}, started=False, method="GET")
def test_parse_response_raises_only_bad_reply(reply, started, method):
    try:
        part = parse_response(reply, started)
    except BadReply:
        return
    output = response_output(part, method, b"fuzz")
    if output.status is None:
        return
    # Whatever passed validation is something h11 can frame, or refuses with LocalProtocolError (answered 500).
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(method.encode() + b" / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    try:
        data = conn.send(h11.Response(status_code=output.status, headers=output.headers, reason=output.reason))
        data += conn.send(h11.Data(data=output.body)) or b""
    except h11.LocalProtocolError:
        return
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"\n" not in head.replace(b"\r\n", b""), head  # no header line was split: nothing injected
    lines = head.split(b"\r\n")[1:]
    for name, value in output.headers:  # each header the application set is one line of its own
        assert name + b": " + value in lines, (name, value, head)


@fuzz_settings(500)
@given(reply=reply_dicts(WS_KEYS), connecting=st.booleans())
@example(reply={"text": "\ud800"}, connecting=False)  # found by fuzzing: UnicodeEncodeError, now BadReply
def test_websocket_actions_raise_only_bad_reply(reply, connecting):
    try:
        actions = websocket_actions(reply, connecting)
    except BadReply:
        return
    for payload, binary in actions.send:
        assert isinstance(payload, bytes) and isinstance(binary, bool)
    assert actions.close is None or actions.close == 1000 or actions.close == 1011 or 3000 <= actions.close <= 4999


tokens = st.sampled_from([b"GET", b"get", b"G\xc3\xa9T", b"\xff", b""]) | st.binary(max_size=8)
targets = st.sampled_from([b"/", b"/%ff", b"/%c3%a9", b"http://h", b"https://h/p?q", b"*", b"?x", b"%"]) | st.binary(
    max_size=30
)
raw_headers = st.lists(
    st.tuples(
        st.sampled_from(
            [b"host", b"x-forwarded-for", b"x-forwarded-port", b"x-forwarded-proto", b"daphne-root-path", b"a_b"]
        )
        | st.binary(max_size=10),
        st.binary(max_size=30),
    ),
    max_size=6,
)


@fuzz_settings(1500)
@given(
    method=tokens,
    version=st.sampled_from([b"1.1", b"1.0", b"2.0", b"0.9", b"\xff"]) | st.binary(max_size=4),
    target=targets,
    headers=raw_headers,
    proxy=st.booleans(),
)
@example(method=b"GET", version=b"1.1", target=b"/", headers=[(b"daphne-root-path", b"%ff%fe")], proxy=False)
@example(method=b"GET", version=b"1.1", target=b"/", headers=[(b"x-forwarded-for", b"\xff")], proxy=True)
def test_request_heads_raise_only_documented_errors(method, version, target, headers, proxy):
    oversized_head(target, headers)
    try:
        check_request_framing(version, headers)
    except FramingError as exc:
        assert exc.status in (400, 505)
    try:
        info = build_request_info(
            method, version, target, headers, ("1.2.3.4", 5), ("127.0.0.1", 80), "http", "", proxy
        )
    except BadRequest:
        return
    http_request_message(info, "reply!x")
    websocket_connect_message(info, "reply!x")
    assert isinstance(info.path, str) and isinstance(info.root_path, str)
