"""`--allowed-origins` on the real server: raw handshakes, and headless Chromium's own `Origin`.

A refused handshake gets 403 and nothing reaches the channel layer (no
`websocket.connect`, so no consumer runs); the refusal is logged at INFO.
"""

from __future__ import annotations

import socket
import threading

import pytest

from tests.support.browser import CHROMIUM, Browser
from tests.support.pages import TwoOrigins, socket_outcome

from .harness import assert_nothing_on, receive

ALLOWED = ["http://127.0.0.1:8765", "*.example.com", "https://app.example.org"]


def handshake(port: int, *origins: str, path: str = "/ws/") -> int:
    """The status a raw WebSocket handshake with these Origin headers gets."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade"]
    lines += ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    lines += [f"Origin: {origin}" for origin in origins]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = b""
        while b"\r\n" not in head:
            data = sock.recv(4096)
            if not data:
                break
            head += data
    assert head.startswith(b"HTTP/1.1 "), head
    return int(head[9:12])


@pytest.fixture
def server(start_server):
    args = [a for origin in ALLOWED for a in ("--allowed-origins", origin)]
    return start_server(*args, "--websocket-connect-timeout", "2")


REFUSED = [
    ((), "no Origin header"),
    (("null",), "Origin: null"),
    (("http://127.0.0.1:8766",), "not in --allowed-origins"),  # another port
    (("https://127.0.0.1:8765",), "not in --allowed-origins"),  # another scheme
    (("http://127.0.0.1",), "not in --allowed-origins"),  # the default port is another origin
    (("http://example.com",), "not in --allowed-origins"),  # the apex is not a subdomain
    (("http://evil-example.com",), "not in --allowed-origins"),
    (("https://app.example.org.evil.net",), "not in --allowed-origins"),
    (("http://app.example.org",), "not in --allowed-origins"),
    (("http://127.0.0.1:8765/path",), "unparsable"),
]


def test_refused_origins_get_403_and_nothing_reaches_the_layer(server, worker_layer):
    for origins, _why in REFUSED:
        assert handshake(server.port, *origins) == 403, origins
        assert_nothing_on(worker_layer, "websocket.connect", wait=0.2)
    # Autobahn itself refuses a repeated Origin header (400) before the policy is asked.
    assert handshake(server.port, "http://127.0.0.1:8765", "http://127.0.0.1:8765") == 400
    assert_nothing_on(worker_layer, "websocket.connect", wait=0.2)
    output = server.output()
    assert output.count("refused with 403") == len(REFUSED), output
    for _, why in REFUSED:
        assert why in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "origin", ["http://127.0.0.1:8765", "https://a.example.com", "http://b.c.example.com:81", "https://app.example.org"]
)
def test_allowed_origins_reach_the_application(server, worker_layer, origin):
    status = {}
    client = threading.Thread(target=lambda: status.setdefault("code", handshake(server.port, origin)))
    client.start()
    _, message = receive(worker_layer, "websocket.connect")
    assert [b"origin", origin.encode()] in message["headers"]
    assert len(message["reply_channel"].rpartition("!")[2]) == 16  # 96 random bits (test_reply_channel_entropy)
    worker_layer.send(message["reply_channel"], {"accept": True})
    client.join(5)
    assert status["code"] == 101


@pytest.fixture
def page_servers():
    with TwoOrigins() as port:
        yield port


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
def test_chromium_origin_is_checked(start_server, worker_layer, page_servers):
    """The Origin a real browser sends for a page on 127.0.0.1:P is allowed; the same page on 127.0.0.2:P is not."""
    port = page_servers
    server = start_server("--allowed-origins", f"http://127.0.0.1:{port}")
    accepting = threading.Event()

    def accept_all() -> None:
        while not accepting.is_set():
            channel, message = worker_layer.receive(["websocket.connect"], block=True)
            if channel is not None:
                accepted.append(dict(message["headers"])[b"origin"])
                worker_layer.send(message["reply_channel"], {"accept": True})

    accepted: list[bytes] = []
    worker = threading.Thread(target=accept_all, daemon=True)
    worker.start()
    try:
        with Browser() as browser:
            page = browser.page()
            assert socket_outcome(page, f"http://127.0.0.1:{port}/", f"{server.ws_url}/ws/") == "open"
            assert accepted == [f"http://127.0.0.1:{port}".encode()]
            got = socket_outcome(page, f"http://127.0.0.2:{port}/", f"{server.ws_url}/ws/")
            assert got == "closed 1006", got  # a refused handshake is 1006 to a page, by design
            assert accepted == [f"http://127.0.0.1:{port}".encode()]
    finally:
        accepting.set()
        worker.join(5)
    assert f"refused with 403: Origin 'http://127.0.0.2:{port}' is not in --allowed-origins" in server.output()
