"""Response headers the application sends, through the real interface server, on both h11 builds.

The test plays the client on a raw socket and, over Redis, the worker. Channels 1.1.8's
`runworker` (Django 2.2) sends `Set-Cookie` values with a leading space; HTTP allows
whitespace around field values (RFC 9110 5.5), so it is stripped and the response goes
out. Names or values no HTTP message may carry (CR, LF, NUL, other controls; names
that are not tokens) get a 500 while nothing was sent, never a reset connection.
"""

from __future__ import annotations

import http.client
import io
import socket
import string
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .harness import read_until_closed, receive


@pytest.fixture
def server(start_server_each_h11):
    """One server per test, on the compiled h11 build and again on pure-Python h11."""
    return start_server_each_h11()


def exchange(server, worker_layer, *replies: dict) -> bytes:
    """One `GET` on a fresh connection, answered with `replies`; the raw bytes until the server closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        _, message = receive(worker_layer, "http.request")
        for reply in replies:
            worker_layer.send(message["reply_channel"], reply)
        return read_until_closed(sock)


def parse(raw: bytes) -> tuple[int, http.client.HTTPMessage, bytes]:
    """A raw response as a client library sees it (raises if it is not a complete response)."""

    class FakeSocket:
        def makefile(self, *args, **kwargs):
            return io.BytesIO(raw)

    response = http.client.HTTPResponse(FakeSocket())
    response.begin()
    return response.status, response.headers, response.read()


def test_channels_1_set_cookie_with_leading_space_is_sent(server, worker_layer):
    """Exactly what Channels 1.1.8's `AsgiHandler.encode_response` sends for a Django login."""
    cookie = b" sessionid=abc123; expires=Thu, 01 Jan 2099 00:00:00 GMT; HttpOnly; Max-Age=1209600; Path=/"
    raw = exchange(
        server,
        worker_layer,
        {
            "status": 302,
            "headers": [(b"Location", b"/"), (b"Set-Cookie", cookie), (b"Set-Cookie", b" csrftoken=xyz; Path=/")],
            "content": b"",
        },
    )
    status, headers, body = parse(raw)
    assert status == 302
    assert headers.get_all("Set-Cookie") == [cookie.strip().decode(), "csrftoken=xyz; Path=/"]
    assert b"Set-Cookie:  " not in raw
    assert "Illegal header value" not in server.output()


WHITESPACE = [
    (b"\tvalue\t", "value"),
    (b"  two words  ", "two words"),
    (b" \t ", ""),
    ("  text as str ", "text as str"),
    (b"inner\tTAB and  spaces", "inner\tTAB and  spaces"),
    (b"caf\xe9", "caf\xe9"),  # obs-text is allowed (latin-1 on the client side)
]


def test_whitespace_around_values_is_stripped(server, worker_layer):
    for value, sent in WHITESPACE:
        raw = exchange(server, worker_layer, {"status": 200, "headers": [(b"X-Value", value)], "content": b"ok"})
        status, headers, body = parse(raw)
        assert (status, body) == (200, b"ok"), value
        assert headers["X-Value"] == sent, value


INVALID_HEADERS = [
    ("NUL in value", b"X-Value", b"a\x00b"),
    ("CR in value", b"X-Value", b"a\rb"),
    ("LF in value", b"X-Value", b"a\nb"),
    ("CRLF injection", b"Set-Cookie", b"a=b\r\nX-Injected: yes"),
    ("vertical tab", b"X-Value", b"a\x0bb"),
    ("form feed", b"X-Value", b"a\x0cb"),
    ("escape", b"X-Value", b"\x1b[31mred"),
    ("DEL", b"X-Value", b"a\x7fb"),
    ("space in name", b"Bad Name", b"v"),
    ("leading space in name", b" X-Value", b"v"),
    ("trailing space in name", b"X-Value ", b"v"),
    ("colon in name", b"X:Value", b"v"),
    ("empty name", b"", b"v"),
    ("NUL in name", b"X\x00", b"v"),
]


def test_invalid_header_gets_500_not_a_reset(server, worker_layer):
    for case, name, value in INVALID_HEADERS:
        raw = exchange(server, worker_layer, {"status": 200, "headers": [(name, value)], "content": b"secret"})
        status, headers, body = parse(raw)
        assert status == 500, case
        assert b"secret" not in raw and b"X-Injected" not in raw, case
        assert headers["Connection"] == "close", case
    assert server.output().count("Bad response") == len(INVALID_HEADERS)


H11_REFUSES = [
    {"status": 200, "headers": [(b"Content-Length", b"3")], "content": b"too long"},
    {"status": 200, "headers": [(b"Content-Length", b"ten")], "content": b"x"},
    {"status": 200, "headers": [(b"Transfer-Encoding", b"gzip")], "content": b"x"},
]


def test_response_h11_refuses_gets_500_when_nothing_was_sent(server, worker_layer):
    for reply in H11_REFUSES:
        raw = exchange(server, worker_layer, reply)
        status, headers, body = parse(raw)
        assert status == 500, reply
        assert headers["Connection"] == "close", reply
    assert server.output().count("answered 500") == len(H11_REFUSES)


def test_response_h11_refuses_after_the_start_closes_the_connection(server, worker_layer):
    """The status line is out: the client sees a truncated body, and the log says why."""
    raw = exchange(
        server,
        worker_layer,
        {"status": 200, "headers": [(b"Content-Length", b"5")], "content": b"abc", "more_content": True},
        {"content": b"defgh", "more_content": False},
    )
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert raw.endswith(b"\r\n\r\nabc")
    with pytest.raises(http.client.IncompleteRead):
        parse(raw)
    deadline = time.monotonic() + 2
    while "closing the connection" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "the response had started: closing the connection" in server.output()


def test_server_keeps_serving_after_invalid_headers(server, worker_layer):
    exchange(server, worker_layer, {"status": 200, "headers": [(b"X", b"\x00")]})
    raw = exchange(server, worker_layer, {"status": 201, "headers": [(b"X", b" fine ")], "content": b"ok"})
    assert parse(raw)[0] == 201


VCHAR = st.sampled_from([bytes([c]) for c in range(0x21, 0x7F)] + [b"\x80", b"\xff"])
INNER = st.lists(st.one_of(VCHAR, st.sampled_from([b" ", b"\t"])), max_size=12).map(b"".join)
PADDING = st.lists(st.sampled_from([b" ", b"\t"]), max_size=3).map(b"".join)
CONTROL = st.sampled_from([bytes([c]) for c in [*range(0, 9), *range(10, 32), 127]])
TOKEN = st.text(alphabet=string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=10)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=TOKEN, before=PADDING, value=INNER, after=PADDING, control=st.one_of(st.none(), CONTROL))
def test_any_value_is_sent_stripped_or_refused_with_500(server, worker_layer, name, before, value, after, control):
    """Valid field content goes out with its surrounding SP/HTAB removed; one control byte anywhere makes it a 500."""
    if control is not None:
        value = value[: len(value) // 2] + control + value[len(value) // 2 :]
    raw = exchange(server, worker_layer, {"status": 200, "headers": [(name, before + value + after)], "content": b"ok"})
    status, headers, body = parse(raw)
    if control is None:
        assert (status, body) == (200, b"ok")
        assert headers[name].encode("latin-1") == value.strip(b" \t")
    else:
        assert status == 500
