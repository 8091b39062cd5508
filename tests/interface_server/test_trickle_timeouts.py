"""Trickle timeouts through the real interface server, with raw sockets and short timeouts.

Slowloris (a head one byte at a time, for HTTP and for a WebSocket
handshake), a slow body (small, then one already streaming to the
application), a silent fresh connection and an idle keep-alive connection
are each cut; every case ends with a normal request still answered. daphne
1.4.2 and 4.x keep all of these open forever.
"""

from __future__ import annotations

import selectors
import socket
import time
import uuid

import pytest

from channels_core.layers import RedisChannelLayer
from tests.conftest import REDIS_URL

from .harness import EchoWorker, ServerProcess, http_request, layer_env, read_until_closed, receive
from .ws_support import drain

# header 1 s, body gap 1 s, keep-alive 1 s; a minimum body rate of 1 MB/s once past 1 s, so that a body's
# first bytes earn little credit (the rate rule itself, at its 1 KiB/s default, is unit-tested on a fake clock)
FAST = [
    "--request-header-timeout",
    "1",
    "--request-body-timeout",
    "1",
    "--request-body-min-rate",
    "1000000",
    "--keepalive-timeout",
    "1",
]
MARGIN = 2.5  # a busy CI machine; the figures printed show the real delays


@pytest.fixture(scope="module")
def shared():
    """One server for the module's cases (each leaves it as it found it), and the layer to play the worker."""
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    server = ServerProcess(
        "tests.interface_server.layers:redis_layer", FAST, env={"TEST_REDIS_URL": REDIS_URL, **layer_env(prefix)}
    ).start()
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix, blocking_timeout=0.2, capacity=1000)
    yield server, layer
    server.stop()
    layer.flush()
    layer.close()


@pytest.fixture
def fast_server(shared):
    return shared[0]


@pytest.fixture
def fast_layer(shared):
    return shared[1]


def still_serves(server, layer) -> None:
    """A normal request is answered (by a worker on a layer of its own with a short blocking read: it stops fast)."""
    quick = RedisChannelLayer(hosts=[REDIS_URL], prefix=layer.prefix, blocking_timeout=0.1)
    try:
        with EchoWorker(quick):
            reply = http_request(server.port, "GET", "/alive")
    finally:
        quick.close()
    assert (reply.status, reply.body) == (200, b"GET /alive")


def trickle_until_closed(sock: socket.socket, data: bytes, interval: float, limit: float) -> tuple[bytes, float]:
    """Send `data` a byte every `interval` s until the server closes; returns (what it answered, seconds taken)."""
    started = time.monotonic()
    sock.settimeout(interval)
    received = b""
    for i in range(len(data)):
        if time.monotonic() - started > limit:
            raise AssertionError(f"still open after {limit}s")
        try:
            sock.send(data[i : i + 1])
        except (BrokenPipeError, ConnectionResetError):
            break
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    else:
        raise AssertionError("sent it all without being cut")
    sock.settimeout(limit)
    received += read_until_closed(sock)
    return received, time.monotonic() - started


SLOW_HEAD = b"GET /slow HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 200 + b"\r\n\r\n"
SLOW_UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    + b"X-Pad: "
    + b"a" * 200
    + b"\r\n\r\n"
)


@pytest.mark.parametrize("head", [SLOW_HEAD, SLOW_UPGRADE], ids=["http", "websocket-handshake"])
def test_slowloris_gets_408_after_the_header_timeout(fast_server, fast_layer, head):
    with socket.create_connection(("127.0.0.1", fast_server.port)) as sock:
        raw, took = trickle_until_closed(sock, head, 0.1, 1 + MARGIN)
    assert raw.startswith(b"HTTP/1.1 408 "), raw
    assert 0.9 <= took < 1 + MARGIN, took
    assert drain(fast_layer, "http.request", settle=0.2) == []
    assert drain(fast_layer, "websocket.connect", settle=0) == []
    assert "Request timeout from" in fast_server.output()
    still_serves(fast_server, fast_layer)


def test_a_connection_that_never_sends_a_byte_is_closed_after_the_header_timeout(fast_server, fast_layer):
    with socket.create_connection(("127.0.0.1", fast_server.port), timeout=1 + MARGIN) as sock:
        started = time.monotonic()
        assert read_until_closed(sock) == b""  # closed, and no 408 to a client that asked nothing
        took = time.monotonic() - started
    assert 0.9 <= took < 1 + MARGIN, took
    still_serves(fast_server, fast_layer)


def test_an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not(fast_server, fast_layer):
    with EchoWorker(fast_layer), socket.create_connection(("127.0.0.1", fast_server.port), timeout=5) as sock:
        # Requests every 0.5 s for 2 s on one connection: each gap is under the 1 s keep-alive timeout.
        for i in range(4):
            sock.sendall(b"GET /k%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
            time.sleep(0.5)
        started = time.monotonic()
        sock.settimeout(1 + MARGIN)
        assert read_until_closed(sock) == b""
        took = time.monotonic() - started
    assert 0.4 <= took < 1 + MARGIN, took  # 1 s after the last response, which was 0.5 s ago
    still_serves(fast_server, fast_layer)


def test_a_small_slow_body_gets_408_and_never_reaches_the_application(fast_server, fast_layer):
    body = b"x" * 100
    with socket.create_connection(("127.0.0.1", fast_server.port)) as sock:
        sock.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        raw, took = trickle_until_closed(sock, body, 0.1, 1 + MARGIN)  # 10 B/s: under 1 KiB/s
    assert raw.startswith(b"HTTP/1.1 408 "), raw
    assert took < 1 + MARGIN, took
    assert drain(fast_layer, "http.request", settle=0.2) == []
    still_serves(fast_server, fast_layer)


def test_a_body_that_stops_gets_408(fast_server, fast_layer):
    with socket.create_connection(("127.0.0.1", fast_server.port), timeout=1 + MARGIN) as sock:
        sock.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n" + b"x" * 5000)
        started = time.monotonic()
        raw = read_until_closed(sock)
        took = time.monotonic() - started
    assert raw.startswith(b"HTTP/1.1 408 "), raw
    assert 0.9 <= took < 1 + MARGIN, took
    still_serves(fast_server, fast_layer)


def test_a_slow_streamed_body_closes_the_body_channel_and_sends_http_disconnect(fast_server, fast_layer):
    """Past the stream threshold the application already has the request: it learns the client was cut.

    The first 300 kB earn credit at the minimum rate (as Apache's mod_reqtimeout
    does): at 1 MB/s that is 0.3 s, so the trickle after them is cut at about 1 s.
    """
    size = 1024 * 1024
    with socket.create_connection(("127.0.0.1", fast_server.port), timeout=5) as sock:
        sock.sendall(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size + b"a" * 300_000)
        _, message = receive(fast_layer, "http.request")
        assert message["body_channel"]
        raw, took = trickle_until_closed(sock, b"b" * 1000, 0.1, 1 + MARGIN)
    assert raw.startswith(b"HTTP/1.1 408 "), raw
    chunks = [receive(fast_layer, message["body_channel"])[1]]
    while "closed" not in chunks[-1]:
        chunks.append(receive(fast_layer, message["body_channel"])[1])
    assert chunks[-1] == {"closed": True}
    _, disconnect = receive(fast_layer, "http.disconnect")
    assert disconnect["reply_channel"] == message["reply_channel"]
    still_serves(fast_server, fast_layer)


def test_a_fast_body_and_a_slow_application_are_not_cut(fast_server, fast_layer):
    """The deadlines are the client's: a 2 s application answer on a 1 s timeout server is served."""
    body = b"z" * 200_000
    with socket.create_connection(("127.0.0.1", fast_server.port), timeout=10) as sock:
        sock.sendall(b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        _, message = receive(fast_layer, "http.request")
        assert message["body"] == body
        time.sleep(2)
        fast_layer.send(message["reply_channel"], {"status": 200, "content": b"done"})
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_500_trickling_clients_are_all_cut_in_time_and_the_server_still_answers(start_server, worker_layer):
    """500 sockets: silent, slowloris heads and 1 byte/s bodies; all closed within timeout + margin."""
    timeout = 2.0
    server = start_server(
        "--request-header-timeout", str(timeout), "--request-body-timeout", str(timeout), "--keepalive-timeout", "1"
    )
    selector = selectors.DefaultSelector()
    sockets: dict[socket.socket, dict] = {}

    def open_one(i: int) -> None:
        sock = socket.create_connection(("127.0.0.1", server.port))
        kind = ("silent", "head", "body")[i % 3]
        if kind == "body":
            sock.sendall(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
            data = b"y" * 10_000
        else:
            data = b"" if kind == "silent" else SLOW_HEAD
        sock.setblocking(False)
        sockets[sock] = {"kind": kind, "data": data, "sent": 0, "opened": time.monotonic(), "closed": None, "raw": b""}
        selector.register(sock, selectors.EVENT_READ)

    started = time.monotonic()
    opened_in = None
    deadline = time.monotonic() + timeout + 30
    next_trickle = time.monotonic()
    while (len(sockets) < 500 or any(s["closed"] is None for s in sockets.values())) and time.monotonic() < deadline:
        # 25 new clients per turn: the server's accept backlog (50) is never overrun (a dropped SYN costs 1 s).
        for _ in range(min(25, 500 - len(sockets))):
            open_one(len(sockets))
        if len(sockets) == 500 and opened_in is None:
            opened_in = time.monotonic() - started
        for key, _ in selector.select(timeout=0.02):
            state = sockets[key.fileobj]
            try:
                chunk = key.fileobj.recv(4096)
            except (ConnectionResetError, BlockingIOError):
                chunk = b""
            state["raw"] += chunk
            if not chunk:
                state["closed"] = time.monotonic()
                selector.unregister(key.fileobj)
        if time.monotonic() >= next_trickle:  # one byte from every trickler, five times a second
            next_trickle += 0.2
            for sock, state in sockets.items():
                if state["closed"] is None and state["sent"] < len(state["data"]):
                    try:
                        sock.send(state["data"][state["sent"] : state["sent"] + 1])
                        state["sent"] += 1
                    except OSError:
                        pass
    lifetimes = {kind: [] for kind in ("silent", "head", "body")}
    for state in sockets.values():
        assert state["closed"] is not None, f"a {state['kind']} client is still open"
        lifetimes[state["kind"]].append(state["closed"] - state["opened"])
    for sock in sockets:
        sock.close()
    still_serves(server, worker_layer)
    longest = max(max(values) for values in lifetimes.values())
    figures = ", ".join(f"{kind} {min(v):.2f}-{max(v):.2f}s" for kind, v in lifetimes.items())
    print(f"500 trickling clients (opened in {opened_in:.2f}s, timeouts {timeout}s): cut after {figures}")
    assert longest < timeout + MARGIN + 1, figures
    assert all(s["raw"].startswith(b"HTTP/1.1 408 ") for s in sockets.values() if s["kind"] != "silent")
    assert drain(worker_layer, "http.request", settle=0) == []
