"""Property-based tests of the translation between wire events and channel messages (no reactor, no network)."""

from __future__ import annotations

import string
from urllib.parse import quote

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from interface_server.wire_messages import (
    MAX_HEAD_BYTES,
    BadReply,
    BadRequest,
    ResponsePart,
    apply_proxy_headers,
    build_request_info,
    clean_headers,
    error_response,
    forbids_body,
    http_request_message,
    oversized_head,
    parse_response,
    raw_error_response,
    reason_phrase,
    response_output,
    split_target,
    websocket_actions,
    websocket_connect_message,
)

TOKEN = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=12)
HEADER_VALUE = st.binary(max_size=30).map(lambda b: bytes(c for c in b if 32 <= c < 127).strip())
HEADERS = st.lists(st.tuples(TOKEN.map(str.encode), HEADER_VALUE), max_size=10)
PATH_SEGMENT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
PATHS = st.lists(PATH_SEGMENT, max_size=4).map(lambda parts: "/" + "/".join(parts))
QUERIES = st.binary(max_size=30).map(lambda b: quote(b, safe="=&").encode())


@given(HEADERS)
def test_clean_headers_lowercases_keeps_order_and_duplicates_and_drops_underscores(raw):
    cleaned = clean_headers(raw)
    expected = [[name.lower(), value] for name, value in raw if b"_" not in name]
    assert cleaned == expected
    assert all(name == name.lower() and b"_" not in name for name, _ in cleaned)


@given(PATHS, QUERIES)
def test_split_target_decodes_the_path_and_keeps_the_query_raw(path, query):
    target = quote(path.encode("utf-8")).encode("ascii") + (b"?" + query if query else b"")
    decoded, raw_query = split_target(target)
    assert decoded == path
    assert raw_query == query


def test_split_target_rejects_paths_that_are_not_utf8():
    with pytest.raises(BadRequest):
        split_target(b"/%ff%fe")


def test_absolute_form_targets_keep_only_the_path():
    assert split_target(b"http://example.com/a/b?x=1") == ("/a/b", b"x=1")
    assert split_target(b"https://example.com") == ("/", b"")


REQUESTS = st.fixed_dictionaries(
    {
        "method": st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
        "path": PATHS,
        "query": QUERIES,
        "headers": HEADERS,
        "body": st.binary(max_size=200),
    }
)


def _wire(request) -> bytes:
    target = quote(request["path"].encode()).encode() + (b"?" + request["query"] if request["query"] else b"")
    lines = [b"%s %s HTTP/1.1" % (request["method"].encode(), target), b"host: example.com"]
    lines += [name + b": " + value for name, value in request["headers"] if name.lower() not in _FRAMING]
    lines.append(b"content-length: %d" % len(request["body"]))
    return b"\r\n".join(lines) + b"\r\n\r\n" + request["body"]


_FRAMING = {b"host", b"content-length", b"transfer-encoding", b"connection", b"expect", b"upgrade"}


@given(REQUESTS)
def test_a_request_parsed_from_the_wire_becomes_the_right_message(request):
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(_wire(request))
    event = conn.next_event()
    info = build_request_info(
        event.method,
        event.http_version,
        event.target,
        event.headers.raw_items(),
        ("10.0.0.7", 5555),
        ("127.0.0.1", 8000),
        "http",
        "/root",
    )
    message = http_request_message(info, "interface.response.abc!def", request["body"])
    assert message["method"] == request["method"]
    assert message["path"] == request["path"]
    assert message["query_string"] == request["query"]
    assert message["http_version"] == "1.1"
    assert message["scheme"] == "http" and message["root_path"] == "/root"
    assert message["client"] == ["10.0.0.7", 5555] and message["server"] == ["127.0.0.1", 8000]
    sent = [[n.lower(), v] for n, v in request["headers"] if n.lower() not in _FRAMING and b"_" not in n]
    assert [h for h in message["headers"] if h[0] not in _FRAMING] == sent
    assert message["body"] == request["body"]
    assert "body_channel" not in message


def test_daphne_root_path_header_overrides_and_is_removed():
    info = build_request_info(
        b"GET", b"1.1", b"/x", [(b"Daphne-Root-Path", b"/my%20app"), (b"Accept", b"*/*")], None, None, "http", "/cli"
    )
    assert info.root_path == "/my app"
    assert info.headers == [[b"accept", b"*/*"]]


@given(
    host=st.ip_addresses().map(str),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    proto=st.sampled_from([None, b"https", b"http", b"HTTPS", b"gopher"]),
    scheme=st.sampled_from(["http", "ws"]),
)
def test_proxy_headers(host, port, proto, scheme):
    headers = [[b"x-forwarded-for", f"{host}, 10.9.9.9".encode()]]
    if port is not None:
        headers.append([b"x-forwarded-port", str(port).encode()])
    if proto is not None:
        headers.append([b"x-forwarded-proto", proto])
    peer = apply_proxy_headers(headers, ("127.0.0.1", 1), scheme)
    assert peer.client == (host, port or 0)
    secure = proto is not None and proto.lower() == b"https"
    plain = proto is not None and proto.lower() == b"http"
    if scheme == "ws":
        assert peer.scheme == ("wss" if secure else "ws")
    else:
        assert peer.scheme == ("https" if secure else "http" if plain or proto is None else scheme)


def test_proxy_headers_absent_leave_the_peer_alone():
    assert apply_proxy_headers([], ("1.2.3.4", 5), "http").client == ("1.2.3.4", 5)


def test_websocket_connect_message_keys():
    info = build_request_info(
        b"GET", b"1.1", b"/chat/%C3%A9?room=1", [(b"Origin", b"null")], ("1.1.1.1", 2), ("127.0.0.1", 80), "ws"
    )
    message = websocket_connect_message(info, "r!x")
    assert message == {
        "reply_channel": "r!x",
        "scheme": "ws",
        "path": "/chat/é",
        "query_string": b"room=1",
        "root_path": "",
        "headers": [[b"origin", b"null"]],
        "client": ["1.1.1.1", 2],
        "server": ["127.0.0.1", 80],
        "order": 0,
    }


# -- responses ---------------------------------------------------------------------------

RESPONSE_HEADERS = st.lists(st.tuples(TOKEN, st.text(alphabet=string.printable.strip(), max_size=20)), max_size=5)


@given(st.integers(100, 999), RESPONSE_HEADERS, st.binary(max_size=50), st.booleans())
def test_valid_first_responses_parse(status, headers, content, more):
    part = parse_response({"status": status, "headers": headers, "content": content, "more_content": more}, False)
    assert part.status == status and part.content == content and part.more_content is more
    assert part.headers == [(n.encode(), v.encode()) for n, v in headers]


@pytest.mark.parametrize(
    "message, started, error",
    [
        ({}, False, "needs a status"),
        ({"status": "200"}, False, "status must be an int"),
        ({"status": True}, False, "status must be an int"),
        ({"status": 200, "content": "text"}, False, "content must be bytes"),
        ({"status": 200, "more_content": 1}, False, "more_content"),
        ({"status": 200, "headers": [["a"]]}, False, "pairs"),
        ({"status": 200, "headers": [["x", "a\r\nb"]]}, False, "line break"),
        ({"status": 200, "bogus": 1}, False, "unknown keys"),
        ({"status": 200}, True, "second response"),
        ({"content": b"x", "headers": [["a", "b"]]}, True, "only be sent with the status"),
        ("not a dict", False, "must be a dict"),
    ],
)
def test_invalid_responses_are_bad_replies(message, started, error):
    with pytest.raises(BadReply, match=error):
        parse_response(message, started)


# -- request head limits -------------------------------------------------------------------


def test_a_head_within_the_limit_passes():
    assert oversized_head(b"/" + b"a" * 100, [(b"host", b"x")]) is None


def test_a_target_over_the_limit_is_414():
    assert oversized_head(b"/" * (MAX_HEAD_BYTES + 1), []) == (414, "Request target too long.")


@given(st.integers(0, 40))
def test_the_head_size_counts_target_and_headers_with_their_separators(slack):
    # target + (name + value + ": " + CRLF) for each header
    headers = [(b"x-a", b"v" * 1000)] * 10
    size = 5 + 10 * (3 + 1000 + 4)
    assert oversized_head(b"/abcd", headers, limit=size + slack) is None
    assert oversized_head(b"/abcd", headers, limit=size - 1 - slack) == (431, "Request header fields too large.")


# -- reply message -> what goes on the wire ------------------------------------------------

SERVER = b"interface-server"
METHODS = st.sampled_from(["GET", "POST", "HEAD", "OPTIONS"])
STATUSES = st.sampled_from([200, 201, 204, 301, 304, 404, 418, 500, 599, 799])
_FRAMING_NAMES = {"content-length", "transfer-encoding", "server", "connection"}


def _first(status, headers=(), content=b"", more=False) -> ResponsePart:
    return ResponsePart(status, list(headers), content, more)


def test_a_whole_response_gets_content_length_and_server():
    output = response_output(_first(200, [(b"content-type", b"text/plain")], b"hello"), "GET", SERVER)
    assert (output.status, output.reason, output.body, output.end) == (200, b"OK", b"hello", True)
    assert output.headers == [(b"content-type", b"text/plain"), (b"content-length", b"5"), (b"server", SERVER)]


def test_a_streamed_response_gets_no_content_length():
    output = response_output(_first(200, [], b"part", more=True), "GET", SERVER)
    assert output.headers == [(b"server", SERVER)] and output.body == b"part" and not output.end


@pytest.mark.parametrize("name", [b"Content-Length", b"transfer-encoding"])
def test_framing_set_by_the_application_is_kept_alone(name):
    output = response_output(_first(200, [(name, b"5")], b"hello"), "GET", SERVER)
    assert [n for n, _ in output.headers] == [name, b"server"]


def test_the_applications_server_header_wins():
    output = response_output(_first(200, [(b"Server", b"mine")], b""), "GET", SERVER)
    assert output.headers == [(b"Server", b"mine"), (b"content-length", b"0")]


@pytest.mark.parametrize("status, method", [(204, "GET"), (304, "GET"), (101, "GET"), (200, "HEAD"), (404, "HEAD")])
def test_bodyless_responses_drop_their_content_and_get_no_content_length(status, method):
    output = response_output(_first(status, [], b"dropped"), method, SERVER)
    assert output.body == b"" and output.end
    assert output.headers == [(b"server", SERVER)]


def test_later_messages_carry_only_body_and_end():
    later = ResponsePart(None, [], b"more", False)
    assert response_output(later, "GET", SERVER) == response_output(later, "POST", SERVER)
    output = response_output(later, "GET", SERVER)
    assert (output.status, output.headers, output.reason, output.body, output.end) == (None, [], b"", b"more", True)
    assert response_output(later, "HEAD", SERVER).body == b""


@given(METHODS, STATUSES)
def test_forbids_body_follows_rfc_9110(method, status):
    assert forbids_body(method, status) == (method == "HEAD" or status in (204, 304) or status < 200)


def test_reason_phrases():
    assert reason_phrase(200) == b"OK"
    assert reason_phrase(431) == b"Request Header Fields Too Large"
    assert reason_phrase(799) == b""


@given(
    METHODS.filter(lambda m: m != "HEAD"),
    st.sampled_from([200, 201, 404, 418, 500]),
    RESPONSE_HEADERS.map(lambda hs: [(n.encode(), v.encode()) for n, v in hs if n.lower() not in _FRAMING_NAMES]),
    st.binary(max_size=100),
)
def test_h11_frames_a_whole_response_into_what_a_client_reads_back(method, status, headers, content):
    output = response_output(_first(status, headers, content), method, SERVER)
    server = h11.Connection(h11.SERVER)
    server.receive_data(b"%s / HTTP/1.1\r\nhost: x\r\n\r\n" % method.encode())
    server.next_event()
    wire = b"".join(
        server.send(event)
        for event in (
            h11.Response(status_code=output.status, headers=output.headers, reason=output.reason),
            h11.Data(data=output.body),
            h11.EndOfMessage(),
        )
    )
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(wire)
    response = client.next_event()
    assert response.status_code == status
    received = dict(response.headers.raw_items())
    assert received[b"content-length"] == b"%d" % len(content)
    assert received[b"server"] == SERVER
    body = b""
    event = client.next_event()
    while isinstance(event, h11.Data):
        body += event.data
        event = client.next_event()
    assert isinstance(event, h11.EndOfMessage) and body == content


def test_the_servers_own_error_responses():
    assert error_response(413, "Request body too large.", close=True) == (
        [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"28"), (b"connection", b"close")],
        b"413 Request body too large.\n",
    )
    assert error_response(503, "x", close=False)[0][-1] == (b"content-length", b"6")
    assert raw_error_response(400) == (
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 16\r\n"
        b"connection: close\r\n\r\n400 Bad Request\n"
    )


# -- the WebSocket handshake matrix --------------------------------------------------------

MATRIX = [
    # message, connecting -> accept, reject, sends, close
    ({"accept": True}, True, (True, False, [], None)),
    ({"accept": False}, True, (False, True, [], None)),
    ({"accept": False, "text": "x"}, True, (False, True, [], None)),
    ({"text": "hi"}, True, (True, False, [(b"hi", False)], None)),
    ({"bytes": b"\x00"}, True, (True, False, [(b"\x00", True)], None)),
    ({"close": True}, True, (False, True, [], None)),
    ({"close": 4001}, True, (False, True, [], None)),
    ({"text": "bye", "close": True}, True, (True, False, [(b"bye", False)], 1000)),
    ({"accept": True, "close": 4002}, True, (True, False, [], 4002)),
    ({}, True, (False, False, [], None)),
    ({"text": "x"}, False, (False, False, [(b"x", False)], None)),
    ({"accept": True, "text": "x"}, False, (False, False, [(b"x", False)], None)),
    ({"accept": False}, False, (False, False, [], None)),
    ({"close": True}, False, (False, False, [], 1000)),
    ({"bytes": b"z", "close": 3000}, False, (False, False, [(b"z", True)], 3000)),
    ({"close": 1011}, False, (False, False, [], 1011)),
]


@pytest.mark.parametrize("message, connecting, expected", MATRIX)
def test_websocket_handshake_matrix(message, connecting, expected):
    actions = websocket_actions(message, connecting)
    assert (actions.accept, actions.reject, actions.send, actions.close) == expected


@pytest.mark.parametrize(
    "message",
    [
        {"text": "a", "bytes": b"b"},
        {"text": b"bytes"},
        {"bytes": "text"},
        {"close": 1001},
        {"close": 2999},
        {"close": "soon"},
        {"nope": 1},
        ["list"],
    ],
)
def test_invalid_websocket_replies(message):
    with pytest.raises(BadReply):
        websocket_actions(message, connecting=False)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "accept": st.booleans(),
            "text": st.text(max_size=5),
            "close": st.sampled_from([False, True, 1000, 4000]),
        },
    ),
    st.booleans(),
)
def test_websocket_actions_never_accept_and_reject_at_once(message, connecting):
    actions = websocket_actions(message, connecting)
    assert not (actions.accept and actions.reject)
    if actions.reject:
        assert actions.send == [] and actions.close is None
    if not connecting:
        assert not actions.accept and not actions.reject


def test_websocket_actions_reuses_a_fan_out_copy_but_never_a_different_message():
    shared = {"text": "hello"}
    first = websocket_actions(dict(shared), connecting=False)
    again = websocket_actions(dict(shared), connecting=False)
    assert again is first  # each member's copy of one group message is validated once
    assert again.send == [(b"hello", False)]
    assert websocket_actions({"bytes": b"hello"}, connecting=False).send == [(b"hello", True)]
    assert websocket_actions({"text": "other"}, connecting=False).send == [(b"other", False)]
    assert websocket_actions({"text": "other", "close": True}, connecting=False).close == 1000
    # A handshake still pending always gets its own actions (data there accepts implicitly).
    connecting = websocket_actions({"text": "other"}, connecting=True)
    assert connecting.accept and connecting.send == [(b"other", False)]
    # Changing a message after it was handled changes nothing for the next equal one.
    message = {"text": "mutable"}
    websocket_actions(message, connecting=False)
    message["text"] = "changed"
    assert websocket_actions({"text": "mutable"}, connecting=False).send == [(b"mutable", False)]
    assert websocket_actions(message, connecting=False).send == [(b"changed", False)]
    with pytest.raises(BadReply):
        websocket_actions({"text": "mutable", "extra": 1}, connecting=False)
