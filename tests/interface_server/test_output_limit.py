"""Bounded output per connection: a client that never reads cannot make the server hold its replies.

A real server process; a raw client that never reads its socket (a small
receive buffer, so the kernel holds little); the test plays the application
and sends it 20 MiB. The server closes it (1008, then a TCP abort), logs it
once, stays within the limit plus some slack in RSS, and another client on
the same server gets every message meanwhile. An HTTP streaming response to
a client that does not read is aborted the same way.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from .harness import receive
from .ws_support import disconnects_for, open_ws, send_retry

MIB = 1024 * 1024
HANDSHAKE = (
    b"GET /hog HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def non_reading_socket(port: int) -> socket.socket:
    """A connected socket with a small receive buffer (set before connecting, so the window stays small)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)  # one byte at a time: nothing after the head is taken off the socket
        assert chunk, data
        data += chunk
    return data


def is_cut(sock: socket.socket, timeout: float) -> bool:
    """Read everything the kernel still holds; True if the server closed or reset the connection meanwhile."""
    sock.settimeout(timeout)
    try:
        while sock.recv(1 << 20):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def rss_sampler(server, samples: list[int], stop: threading.Event) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            samples.append(server.rss_kb())
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_websocket_that_never_reads_is_closed_and_memory_stays_bounded(start_server, worker_layer, request):
    server = start_server(*getattr(request, "param", ()), layer_options={"capacity": 200})
    hog = non_reading_socket(server.port)
    hog.sendall(HANDSHAKE)
    connect = receive(worker_layer, "websocket.connect")[1]
    worker_layer.send(connect["reply_channel"], {"accept": True})
    assert read_head(hog).startswith(b"HTTP/1.1 101 ")
    other, other_connect = open_ws(server, worker_layer, "/other")

    baseline = server.rss_kb()
    samples: list[int] = []
    stop = threading.Event()
    sampler = rss_sampler(server, samples, stop)
    payload = b"x" * (64 * 1024)
    started = time.monotonic()
    other_got = []
    for i in range(20 * MIB // len(payload)):  # 20 MiB for the hog, a small message for the other client
        send_retry(worker_layer, connect["reply_channel"], {"bytes": payload}, timeout=10)
        if i % 10 == 0:
            send_retry(worker_layer, other_connect["reply_channel"], {"text": f"n{i}"})
            other_got.append(other.recv(timeout=5))
    sent_in = time.monotonic() - started
    # Replies are handled in order: once this one is through, so is every frame for the hog.
    send_retry(worker_layer, other_connect["reply_channel"], {"text": "last"})
    assert other.recv(timeout=10) == "last"
    time.sleep(0.3)
    stop.set()
    sampler.join()
    growth = max(samples) - baseline
    print(
        f"20 MiB sent to a WebSocket that never reads (in {sent_in:.1f}s): "
        f"server RSS {baseline} kB, peak +{growth} kB (limit {MIB // 1024} kB)"
    )
    assert is_cut(hog, timeout=10), "the server did not close the client that never reads"

    assert other_got == [f"n{i}" for i in range(0, 20 * MIB // len(payload), 10)]
    other.send("still there")
    assert receive(worker_layer, "websocket.receive")[1]["text"] == "still there"
    disconnects = disconnects_for(worker_layer, connect["reply_channel"], settle=0.3)
    assert len(disconnects) == 1
    output = server.output()
    assert output.count("does not read") == 1, output[-3000:]
    assert growth < (MIB + 8 * MIB) // 1024, f"RSS grew by {growth} kB"
    other.close()
    hog.close()


def test_an_http_streaming_response_to_a_client_that_never_reads_is_aborted(start_server, worker_layer):
    server = start_server("--max-output-buffer", str(256 * 1024))
    hog = non_reading_socket(server.port)
    hog.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    request = receive(worker_layer, "http.request")[1]
    reply = request["reply_channel"]
    worker_layer.send(reply, {"status": 200, "headers": [], "more_content": True})
    chunk = b"y" * (64 * 1024)
    sent = 0
    disconnect = None
    while sent < 40 * MIB and disconnect is None:  # a streaming app stops when it hears http.disconnect
        send_retry(worker_layer, reply, {"content": chunk, "more_content": True})
        sent += len(chunk)
        channel, message = worker_layer.receive(["http.disconnect"], block=False)
        if channel is not None:
            disconnect = message
    if disconnect is None:
        disconnect = receive(worker_layer, "http.disconnect")[1]
    assert disconnect["reply_channel"] == reply
    assert sent < 20 * MIB, sent  # cut long before: limit + kernel buffers
    assert is_cut(hog, timeout=10)
    assert server.output().count("does not read its response") == 1
    # The server still serves.
    ws, _ = open_ws(server, worker_layer, "/after")
    ws.close()
    hog.close()
    print(f"HTTP stream to a client that never reads: aborted after {sent // 1024} kB sent by the application")


def test_a_slow_reader_of_a_large_response_is_not_cut_by_the_keep_alive_timeout(start_server, worker_layer):
    """3 MiB streamed to a client with a small window, read after 1.5 s, with a 1 s keep-alive timeout: all arrives."""
    server = start_server("--keepalive-timeout", "1", "--max-output-buffer", str(8 * MIB))
    sock = non_reading_socket(server.port)
    sock.sendall(b"GET /download HTTP/1.1\r\nHost: x\r\n\r\n")
    request = receive(worker_layer, "http.request")[1]
    part = b"d" * (768 * 1024)  # a layer message holds at most 1 MiB
    head = {"status": 200, "headers": [[b"content-length", b"%d" % (3 * MIB)]], "more_content": True}
    worker_layer.send(request["reply_channel"], head)
    for i in range(4):
        send_retry(worker_layer, request["reply_channel"], {"content": part, "more_content": i < 3})
    time.sleep(1.5)  # the whole response is queued and the keep-alive deadline passes meanwhile
    received = b""
    started = time.monotonic()
    while len(received) < 3 * MIB:
        try:
            chunk = sock.recv(256 * 1024)
        except ConnectionResetError:
            raise AssertionError(f"reset after {len(received)} bytes: {server.output()[-2000:]}") from None
        assert chunk, f"cut after {len(received)} bytes"
        received += chunk
        time.sleep(0.002)  # with a 4 KiB receive window: a few MB/s at most
    took = time.monotonic() - started
    head, _, body = received.partition(b"\r\n\r\n")
    while len(body) < 3 * MIB:
        chunk = sock.recv(256 * 1024)
        assert chunk, f"cut after {len(body)} body bytes"
        body += chunk
    assert head.startswith(b"HTTP/1.1 200 ") and body == part * 4
    sock.settimeout(5)
    assert sock.recv(10) == b""  # then closed as idle
    sock.close()
    print(f"a 3 MiB response read in {took:.1f}s with a 1 s keep-alive timeout: all of it arrived")
