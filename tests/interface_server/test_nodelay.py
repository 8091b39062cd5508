"""Small writes leave at once: accepted sockets have Nagle's algorithm off (TCP_NODELAY).

With Nagle on, a small write that follows another one still unacknowledged
waits for the client's ACK, and a client delays its ACK (about 40 ms on
Linux) when it has nothing to send. So two frames written to one client
back to back arrive ~40 ms apart. These tests play the worker over Redis and
send two replies to one client 1 ms apart; the client sends nothing in
between (nothing could carry the ACK early) and turns nothing off on its
side, and must see both within a few milliseconds.
"""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from .harness import free_port, receive
from .test_http import make_self_signed
from .ws_support import RawWebSocket

# Well under Linux's 40 ms minimum delayed ACK, well over a loaded machine's scheduling noise.
MAX_GAP = 0.02
ROUNDS = 5


def _arrival_gap(sock: socket.socket, first: bytes, second: bytes, buffer: bytes = b"") -> tuple[float, bytes]:
    """Read until `first` and then `second` have arrived: (seconds between the two, what followed `second`)."""
    first_at = None
    while True:
        if first_at is None and first in buffer:
            first_at = time.monotonic()
            buffer = buffer[buffer.index(first) + len(first) :]
        if first_at is not None and second in buffer:
            return time.monotonic() - first_at, buffer[buffer.index(second) + len(second) :]
        data = sock.recv(65536)
        assert data, f"the server closed the connection; received {buffer!r}"
        buffer += data


def test_two_websocket_frames_sent_1ms_apart_arrive_together(start_server, worker_layer):
    server = start_server()
    client = RawWebSocket(server.port, "/nagle")
    try:
        message = receive(worker_layer, "websocket.connect")[1]
        reply_channel = message["reply_channel"]
        worker_layer.send(reply_channel, {"accept": True})
        client.expect_upgrade()
        gaps = []
        for round_ in range(ROUNDS):
            # The client speaks, then reads the two replies (a broadcast, then a direct answer, say).
            client.send_frame(0x1, b"go")
            assert receive(worker_layer, "websocket.receive")[1]["text"] == "go"
            first, second = f"first-{round_}".encode(), f"second-{round_}".encode()
            worker_layer.send(reply_channel, {"text": first.decode()})
            time.sleep(0.001)
            worker_layer.send(reply_channel, {"text": second.decode()})
            gaps.append(_arrival_gap(client.sock, first, second, client.buffer)[0])
            client.buffer = b""
        # Every round would be ~40 ms with Nagle on; allow one round of scheduling noise.
        assert sorted(gaps)[-2] < MAX_GAP, [f"{gap * 1000:.1f} ms" for gap in gaps]
    finally:
        client.close()


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_http_response_body_sent_in_two_parts_1ms_apart_arrives_together(start_server, worker_layer, tmp_path, tls):
    port = free_port()
    if tls:
        key, cert = make_self_signed(tmp_path)
        start_server("-e", f"ssl:{port}:privateKey={key}:certKey={cert}:interface=127.0.0.1", port=port)
    else:
        start_server(port=port)
    gaps = []
    # One keep-alive connection: the client sends each request as soon as the previous response ended.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        sock = ssl.create_default_context(cafile=cert).wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw
        for round_ in range(ROUNDS):
            sock.sendall(b"GET /nagle HTTP/1.1\r\nHost: x\r\n\r\n")
            message = receive(worker_layer, "http.request")[1]
            first, second = f"first-{round_}".encode(), f"second-{round_}".encode()
            worker_layer.send(message["reply_channel"], {"status": 200, "content": first, "more_content": True})
            time.sleep(0.001)
            worker_layer.send(message["reply_channel"], {"content": second, "more_content": False})
            gap, rest = _arrival_gap(sock, first, second)
            gaps.append(gap)
            while not rest.endswith(b"0\r\n\r\n"):  # the end of the chunked body
                data = sock.recv(65536)
                assert data, rest
                rest += data
    assert sorted(gaps)[-2] < MAX_GAP, [f"{gap * 1000:.1f} ms" for gap in gaps]
