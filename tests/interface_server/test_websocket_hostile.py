"""WebSocket protocol abuse on raw sockets, through the real interface server: each case refused, the server alive.

For every bad frame sequence the server must send a close frame with the
right code (1002 protocol error, 1007 bad UTF-8, 1009 too big), close TCP,
hand nothing of the bad frame to the application, send exactly one
`websocket.disconnect`, and then still answer a normal HTTP request. Bad
handshakes are refused before anything reaches the application. Then
1,000 connect/close cycles: every connect and every disconnect arrives.
"""

from __future__ import annotations

import os
import socket
import struct
import time

import pytest

from channels_core.layers import RedisChannelLayer
from tests.conftest import REDIS_URL
from tests.support.ws_cycles import run_cycles

from .harness import EchoWorker, http_request, read_until_closed
from .ws_support import RawWebSocket, Worker, disconnects_for, drain, receive

MARGIN_WS = 3.0  # a busy CI machine


def frame(first: int, payload: bytes, masked: bool = True, length: int | None = None) -> bytes:
    """A client frame with first byte `first` (FIN, RSV, opcode); `length` overrides the declared length."""
    size = len(payload) if length is None else length
    if size < 126:
        header = bytes([first, (0x80 if masked else 0) | size])
    elif size < 65536:
        header = bytes([first, (0x80 if masked else 0) | 126]) + struct.pack("!H", size)
    else:
        header = bytes([first, (0x80 if masked else 0) | 127]) + struct.pack("!Q", size)
    if not masked:
        return header + payload
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


ABUSE = [
    ("unmasked frame", frame(0x81, b"hi", masked=False), {1002}),
    ("RSV1 without an extension", frame(0xC1, b"hi"), {1002}),
    ("RSV2 and RSV3", frame(0xB1, b"hi"), {1002}),
    ("reserved data opcode 0x3", frame(0x83, b"hi"), {1002}),
    ("reserved control opcode 0xB", frame(0x8B, b"hi"), {1002}),
    ("ping with a 126-byte payload", frame(0x89, b"p" * 126), {1002}),
    ("fragmented ping", frame(0x09, b"p"), {1002}),
    ("continuation without a start", frame(0x80, b"orphan"), {1002}),
    ("new message inside a fragmented one", frame(0x01, b"a") + frame(0x81, b"b"), {1002}),
    ("close with reserved code 999", frame(0x88, close_payload(999)), {1002}),
    ("close with code 1005 (never sent on the wire)", frame(0x88, close_payload(1005)), {1002}),
    ("close with a 1-byte payload", frame(0x88, b"\x03"), {1002}),
    ("close with an invalid UTF-8 reason", frame(0x88, close_payload(1000, b"\xff\xfe")), {1002, 1007}),
    ("text with invalid UTF-8", frame(0x81, b"\xc3\x28"), {1007}),
    ("a 10 MiB frame (limit 1 MiB)", frame(0x82, b"z" * 4096, length=10 * 1024 * 1024), {1009}),
    ("a 2 MiB message in 1 MiB fragments", frame(0x02, b"f" * (1 << 20)) + frame(0x00, b"f" * (1 << 20)), {1009}),
    (
        "a 64-bit length with the top bit set",
        bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 1 << 63) + os.urandom(4),
        {1002, 1009},
    ),
]


@pytest.fixture
def live(start_server, worker_layer, redis_url, key_prefix):
    """The server, plus an HTTP echo worker on a layer of its own (the liveness check after each case)."""
    server = start_server()
    http_layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, blocking_timeout=0.2)
    with EchoWorker(http_layer):
        yield server
    http_layer.close()


def serves(server, name: str) -> None:
    reply = http_request(server.port, "GET", "/alive")
    assert (reply.status, reply.body) == (200, b"GET /alive"), f"after {name}: {reply}"


def opened(server, layer) -> tuple[RawWebSocket, str]:
    raw = RawWebSocket(server.port, "/abuse")
    connect = receive(layer, "websocket.connect")
    layer.send(connect["reply_channel"], {"accept": True})
    raw.expect_upgrade()
    return raw, connect["reply_channel"]


def close_code_read(raw: RawWebSocket) -> int | None:
    """The code of the server's close frame (None if TCP closed without one); reads past other frames."""
    raw.sock.settimeout(5)
    try:
        while True:
            opcode, payload = raw.read_frame()
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
    except (ConnectionError, OSError):
        return None


def test_protocol_abuse_is_closed_with_the_right_code_and_the_server_lives(live, worker_layer):
    failures = []
    for name, data, codes in ABUSE:
        raw, reply_channel = opened(live, worker_layer)
        raw.send_frame(0x1, b"before")
        try:
            raw.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused while we were still writing: the close frame is read below
        code = close_code_read(raw)
        answered = time.monotonic()
        try:
            raw.sock.sendall(frame(0x88, close_payload(1000)))  # complete the closing handshake, as a client does
        except OSError:
            pass
        took = raw.wait_eof(5) - answered
        raw.close()
        receives = [m["text"] or m["bytes"] for m in drain(worker_layer, "websocket.receive", settle=0.2)]
        disconnects = disconnects_for(worker_layer, reply_channel, settle=0)
        if code not in codes:
            failures.append(f"{name}: close code {code}, expected one of {sorted(codes)}")
        if took > 2 or receives != ["before"] or len(disconnects) != 1:
            failures.append(
                f"{name}: TCP closed after {took:.1f}s, receives {receives!r}, {len(disconnects)} disconnects"
            )
        serves(live, name)
    assert failures == []
    assert "Traceback" not in live.output()


def test_a_ping_flood_is_answered_and_the_socket_keeps_working(live, worker_layer):
    raw, reply_channel = opened(live, worker_layer)
    raw.sock.sendall(b"".join(frame(0x89, b"%d" % i) for i in range(10_000)) + frame(0x81, b"after the pings"))
    pongs = 0
    raw.sock.settimeout(10)
    while pongs < 10_000:
        opcode, _ = raw.read_frame()
        pongs += opcode == 0xA
    assert receive(worker_layer, "websocket.receive")["text"] == "after the pings"
    worker_layer.send(reply_channel, {"text": "still open"})
    assert raw.read_frame() == (0x1, b"still open")
    raw.close()
    serves(live, "a ping flood")


def test_a_half_closed_client_is_disconnected_once(live, worker_layer):
    raw, reply_channel = opened(live, worker_layer)
    raw.sock.shutdown(socket.SHUT_WR)
    raw.wait_eof(5)
    raw.close()
    assert len(disconnects_for(worker_layer, reply_channel, settle=0.3)) == 1
    serves(live, "a half-closed client")


HANDSHAKE_HEAD = b"GET /ws HTTP/1.1\r\nHost: x\r\n"
UPGRADE = b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
KEY = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
VERSION = b"Sec-WebSocket-Version: 13\r\n"

BAD_HANDSHAKES = [
    ("version 99", HANDSHAKE_HEAD + UPGRADE + KEY + b"Sec-WebSocket-Version: 99\r\n\r\n"),
    ("no version", HANDSHAKE_HEAD + UPGRADE + KEY + b"\r\n"),
    ("a key of 8 bytes", HANDSHAKE_HEAD + UPGRADE + b"Sec-WebSocket-Key: AQIDBAUGBwg=\r\n" + VERSION + b"\r\n"),
    ("a key that is not base64", HANDSHAKE_HEAD + UPGRADE + b"Sec-WebSocket-Key: %%%%%%%%\r\n" + VERSION + b"\r\n"),
    ("two keys", HANDSHAKE_HEAD + UPGRADE + KEY + KEY + VERSION + b"\r\n"),
    ("Connection without Upgrade", HANDSHAKE_HEAD + b"Upgrade: websocket\r\nConnection: close\r\n" + KEY + VERSION),
]


def test_bad_handshakes_are_refused_before_the_application_and_the_server_lives(live, worker_layer):
    failures = []
    for name, data in BAD_HANDSHAKES:
        with socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock:
            sock.sendall(data if data.endswith(b"\r\n\r\n") else data + b"\r\n")
            try:
                raw = read_until_closed(sock)
            except TimeoutError:
                raw = b"(still open after 5 s)"
        status = raw[9:12]
        if not raw.startswith(b"HTTP/1.1 4") or status == b"101":
            failures.append(f"{name}: {raw[:80]!r}")
        if drain(worker_layer, "websocket.connect", settle=0.1):
            failures.append(f"{name}: reached the application")
        serves(live, name)
    assert failures == []


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_1000_connect_close_cycles_deliver_every_connect_and_disconnect(start_server, worker_layer):
    server = start_server(layer_options={"capacity": 2000})
    with Worker(worker_layer, echo=True) as worker:
        result = run_cycles("127.0.0.1", server.port, "/cycle", 1000, concurrency=50, echo=b"hi")
        deadline = time.monotonic() + 10
        while len(worker.disconnects) < 1000 and time.monotonic() < deadline:
            time.sleep(0.05)
    print(
        f"1000 WebSocket connect/echo/close cycles, 50 at a time: {result.seconds:.1f}s, "
        f"{len(worker.connects)} connects, {len(worker.disconnects)} disconnects, {len(result.errors)} errors"
    )
    assert result.errors == []
    assert (result.opened, result.echoed, result.closed_cleanly) == (1000, 1000, 1000)
    assert len(worker.connects) == 1000
    assert len({m["reply_channel"] for m in worker.disconnects}) == len(worker.disconnects) == 1000
    assert {m["code"] for m in worker.disconnects} == {1000}
    with EchoWorker(worker_layer):
        assert http_request(server.port, "GET", "/after").status == 200


def test_a_frame_trickled_one_byte_at_a_time_is_cut_by_the_ping_timeout(start_server, worker_layer):
    """Mid-frame a client cannot answer a ping: a frame dribbled byte by byte is cut after ping interval + timeout."""
    server = start_server("--ping-interval", "1", "--ping-timeout", "1")
    raw, reply_channel = opened(server, worker_layer)
    data = frame(0x81, b"t" * 100)
    started = time.monotonic()
    raw.sock.settimeout(0.2)
    cut = False
    for i in range(len(data)):
        try:
            raw.sock.send(data[i : i + 1])
            if not raw.sock.recv(4096):
                cut = True
                break
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            cut = True
            break
    took = time.monotonic() - started
    raw.close()
    assert cut, "sent the whole frame, one byte every 0.2 s, without being cut"
    assert took < 1 + 1 + MARGIN_WS, took
    assert drain(worker_layer, "websocket.receive", settle=0.2) == []
    assert len(disconnects_for(worker_layer, reply_channel, settle=0)) == 1
    with EchoWorker(RedisChannelLayer(hosts=[REDIS_URL], prefix=worker_layer.prefix, blocking_timeout=0.2)):
        serves(server, "a trickled frame")
