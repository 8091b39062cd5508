"""Response splitting: CR/LF (and other controls) in what the application puts in a response head.

Issue 11's tests (`test_http_response_headers.py`) cover bytes names and values
over a real socket. These add, on both h11 builds: `str` names and values, a
Unicode line separator, an injection after valid headers, in a streamed
response, in `status_text`, and on a keep-alive connection with a pipelined
request behind it. In each case the client gets one 500 and a close, and
nothing the application wrote in that head (nor its body) reaches the wire.
"""

from __future__ import annotations

import socket

import pytest

from .harness import read_until_closed, receive
from .test_http_response_headers import exchange, parse

INJECTED = b"X-Injected"


@pytest.fixture
def server(start_server_each_h11):
    return start_server_each_h11()


def assert_refused(raw: bytes, case: str) -> None:
    status, headers, body = parse(raw)
    assert status == 500, (case, raw[:300])
    assert headers["Connection"] == "close", case
    assert INJECTED.lower() not in raw.lower() and b"secret" not in raw and b"X-Good" not in raw, (case, raw)
    assert raw.count(b"HTTP/1.1 ") == 1, (case, raw)


CASES = [
    ("str value with CRLF", [("Set-Cookie", "a=b\r\nX-Injected: yes")]),
    ("str value with LF", [("Location", "/next\nX-Injected: yes")]),
    ("str value with CR", [("Location", "/next\rX-Injected: yes")]),
    ("str name with CRLF", [("X-Injected: yes\r\nX-A", "v")]),
    ("Unicode line separator", [("X-A", "a\u2028X-Injected: yes")]),
    ("NEL as str", [("X-A", "a\u0085\r\nX-Injected: yes")]),
    ("after valid headers", [(b"X-Good", b"1"), (b"X-Good-Too", b"2"), (b"X-A", b"v\r\n\r\nX-Injected: body")]),
    ("double CRLF ends the head early", [(b"X-A", b"v\r\n\r\n<html>X-Injected</html>")]),
]


def test_injections_in_names_and_values_get_500_and_nothing_is_written(server, worker_layer):
    for case, headers in CASES:
        raw = exchange(server, worker_layer, {"status": 200, "headers": headers, "content": b"secret"})
        assert_refused(raw, case)
    assert "Traceback" not in server.output()


def test_injection_in_a_streamed_response_sends_nothing(server, worker_layer):
    raw = exchange(
        server,
        worker_layer,
        {"status": 200, "headers": [(b"X-A", b"a\r\nX-Injected: yes")], "content": b"secret", "more_content": True},
        {"content": b"secret too", "more_content": False},
    )
    assert_refused(raw, "streamed")


def test_status_text_is_never_written(server, worker_layer):
    """`status_text` is accepted (ASGI 1.0 allows it) but the standard reason phrase goes out."""
    raw = exchange(server, worker_layer, {"status": 200, "status_text": "OK\r\nX-Injected: yes", "content": b"ok"})
    status, headers, body = parse(raw)
    assert (status, body) == (200, b"ok")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and INJECTED not in raw


def test_injection_on_a_keep_alive_connection_does_not_answer_the_pipelined_request(server, worker_layer):
    """The attacker's aim is a second, forged response for the next request: the connection closes instead."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        _, first = receive(worker_layer, "http.request")
        assert first["path"] == "/first"
        forged = b"0\r\n\r\nHTTP/1.1 200 OK\r\nX-Injected: forged\r\nContent-Length: 6\r\n\r\nforged"
        worker_layer.send(first["reply_channel"], {"status": 200, "headers": [(b"X-A", b"v\r\n" + forged)]})
        raw = read_until_closed(sock)
    assert_refused(raw, "pipelined")
    assert b"forged" not in raw
