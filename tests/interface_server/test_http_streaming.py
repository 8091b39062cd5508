"""HTTP over time: response timeouts, long streams, a full request channel, shutdown, and a soak."""

from __future__ import annotations

import http.client
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .harness import EchoWorker, assert_nothing_on, http_request, read_until_closed, receive


@pytest.fixture
def background():
    with ThreadPoolExecutor(max_workers=8) as pool:
        yield pool


def timed(fn, *args, **kwargs):
    started = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - started


def assert_serving(server, worker_layer, background, path: str = "/still-alive") -> None:
    future = background.submit(http_request, server.port, "GET", path)
    _, message = receive(worker_layer, "http.request")
    assert message["path"] == path
    worker_layer.send(message["reply_channel"], {"status": 200, "content": b"ok"})
    reply = future.result(10)
    assert (reply.status, reply.body) == (200, b"ok")


# -- 6. response timeouts --------------------------------------------------------------------


def test_no_reply_gets_503_after_http_timeout(start_server, worker_layer, background):
    server = start_server("-t", "1")
    reply, elapsed = timed(http_request, server.port, "GET", "/nobody-home")
    assert reply.status == 503
    assert b"failed to respond" in reply.body
    assert 0.9 <= elapsed < 2.5
    # The request did reach the application; answering it now is harmless.
    _, message = receive(worker_layer, "http.request")
    assert message["path"] == "/nobody-home"
    worker_layer.send(message["reply_channel"], {"status": 200, "content": b"too late"})
    assert_serving(server, worker_layer, background)


def test_timeout_of_one_request_does_not_affect_others(start_server, worker_layer, background):
    server = start_server("-t", "1")
    slow = background.submit(timed, http_request, server.port, "GET", "/ignored")
    quick = background.submit(http_request, server.port, "GET", "/answered")
    messages = {}
    for _ in range(2):
        _, message = receive(worker_layer, "http.request")
        messages[message["path"]] = message
    time.sleep(0.5)
    worker_layer.send(messages["/answered"]["reply_channel"], {"status": 200, "content": b"answered"})
    assert quick.result(10).body == b"answered"
    reply, elapsed = slow.result(10)
    assert reply.status == 503
    assert 0.9 <= elapsed < 2.5
    # And the timeout keeps working for later requests, as do normal replies.
    reply, elapsed = timed(http_request, server.port, "GET", "/ignored-too")
    assert reply.status == 503
    assert 0.9 <= elapsed < 2.5
    receive(worker_layer, "http.request")
    assert_serving(server, worker_layer, background)


def test_stream_outliving_http_timeout_is_not_cut(start_server, worker_layer, background):
    """-t bounds the wait for the *first* response message only; the timer machinery survives a long stream."""
    server = start_server("-t", "1")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        started = time.monotonic()
        conn.request("GET", "/long-stream")
        _, message = receive(worker_layer, "http.request")
        channel = message["reply_channel"]
        time.sleep(0.5)
        worker_layer.send(channel, {"status": 200, "content": b"0.5 ", "more_content": True})
        response = conn.getresponse()
        assert response.status == 200
        assert response.read(4) == b"0.5 "
        # A request that gets no answer while the stream is running still times out on time.
        waiting = background.submit(timed, http_request, server.port, "GET", "/during-stream")
        _, during = receive(worker_layer, "http.request")
        assert during["path"] == "/during-stream"
        for at in (1.0, 1.5, 2.0):
            time.sleep(max(0.0, started + at - time.monotonic()))
            worker_layer.send(channel, {"content": b"%.1f " % at, "more_content": True})
        time.sleep(max(0.0, started + 2.5 - time.monotonic()))
        worker_layer.send(channel, {"content": b"2.5 end"})
        assert response.read() == b"1.0 1.5 2.0 2.5 end"
        assert time.monotonic() - started >= 2.5
        reply, elapsed = waiting.result(10)
        assert reply.status == 503
        assert 0.9 <= elapsed < 2.5
    finally:
        conn.close()
    # After the stream, the timeout still fires for a new unanswered request.
    reply, elapsed = timed(http_request, server.port, "GET", "/after-stream")
    assert reply.status == 503
    assert 0.9 <= elapsed < 2.5
    receive(worker_layer, "http.request")
    assert_serving(server, worker_layer, background)


def test_streamed_body_request_times_out_after_the_body(start_server, worker_layer, background):
    server = start_server("-t", "1")
    body = b"b" * 600_000
    future = background.submit(timed, http_request, server.port, "POST", "/big-unanswered", body=body)
    _, message = receive(worker_layer, "http.request")
    received = b""
    while True:
        _, chunk = receive(worker_layer, message["body_channel"])
        received += chunk["content"]
        if not chunk["more_content"]:
            break
    body_done = time.monotonic()
    reply, _ = future.result(10)
    assert received == body
    assert reply.status == 503
    assert 0.8 <= time.monotonic() - body_done < 2.5


# -- 7. a full request channel -------------------------------------------------------------------


def test_full_request_channel_that_nothing_drains_gets_503_within_the_bound(start_server, worker_layer, background):
    """A full http.request that takes nothing for 2 s is unavailable: the waiting request gets 503 (bound 2.5 s)."""
    server = start_server("-t", "10", layer_options={"capacity": 1})
    first = background.submit(http_request, server.port, "GET", "/queued")
    deadline = time.monotonic() + 5
    while worker_layer.channel_statistics("http.request")["messages_pending"] < 1:
        assert time.monotonic() < deadline, "the first request never reached http.request"
        time.sleep(0.02)
    reply, elapsed = timed(http_request, server.port, "GET", "/rejected")
    assert reply.status == 503
    assert 1.5 <= elapsed < 4.0, elapsed
    # While the channel stays stuck, a new request is answered at once.
    reply, elapsed = timed(http_request, server.port, "GET", "/rejected-too")
    assert reply.status == 503
    assert elapsed < 1.0, elapsed
    assert not first.done()
    # The queued request is still served once a worker reads it; then there is room again.
    _, message = receive(worker_layer, "http.request")
    assert message["path"] == "/queued"
    worker_layer.send(message["reply_channel"], {"status": 200, "content": b"queued ok"})
    assert first.result(10).body == b"queued ok"
    assert_nothing_on(worker_layer, "http.request", 0.2)  # the rejected requests were never queued
    assert_serving(server, worker_layer, background)


def test_full_request_channel_makes_requests_wait_not_fail(start_server, worker_layer, background):
    """Capacity 1 and a worker that reads slowly: every request waits its turn and is served."""
    server = start_server("-t", "10", layer_options={"capacity": 1})
    futures = [background.submit(http_request, server.port, "GET", f"/r{i}") for i in range(4)]
    served = []
    for _ in range(4):
        time.sleep(0.3)  # the channel stays full meanwhile
        _, message = receive(worker_layer, "http.request")
        served.append(message["path"])
        worker_layer.send(message["reply_channel"], {"status": 200, "content": message["path"].encode()})
    assert sorted(served) == [f"/r{i}" for i in range(4)]
    assert [f.result(10).status for f in futures] == [200] * 4
    assert worker_layer.channel_statistics("http.request")["channel_full_count"] > 0


def test_full_body_channel_pauses_the_upload_without_losing_data(start_server, worker_layer, background):
    """Capacity 1: every body chunk waits for the worker to take the previous one."""
    server = start_server("-t", "10", layer_options={"capacity": 1})
    body = bytes(range(256)) * 5000  # ~1.2 MiB, 5 chunks
    future = background.submit(http_request, server.port, "POST", "/backpressure", body=body)
    _, message = receive(worker_layer, "http.request")
    received = b""
    while True:
        time.sleep(0.2)  # a slow reader: the channel stays full meanwhile
        _, chunk = receive(worker_layer, message["body_channel"])
        assert not chunk.get("closed")
        received += chunk["content"]
        if not chunk["more_content"]:
            break
    assert received == body
    worker_layer.send(message["reply_channel"], {"status": 200, "content": b"%d" % len(received)})
    reply = future.result(10)
    assert (reply.status, reply.body) == (200, b"%d" % len(body))
    # The server really did hit ChannelFull on the body channel (and retried).
    assert worker_layer.channel_statistics(message["body_channel"])["channel_full_count"] > 0


# -- 14. graceful shutdown -----------------------------------------------------------------------


def refused(port: int) -> bool:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=1)
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    sock.close()
    return False


def test_sigterm_drains_in_flight_request(start_server, worker_layer, background):
    server = start_server("--shutdown-grace", "10")
    # An idle keep-alive connection, and a request in flight.
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    idle.request("GET", "/idle")
    _, message = receive(worker_layer, "http.request")
    worker_layer.send(message["reply_channel"], {"status": 200, "content": b"idle"})
    assert idle.getresponse().read() == b"idle"
    in_flight = background.submit(http_request, server.port, "GET", "/in-flight")
    _, message = receive(worker_layer, "http.request")

    server.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 3
    while not refused(server.port):
        assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
        time.sleep(0.05)
    # The idle connection is closed right away...
    idle.sock.settimeout(3)
    assert read_until_closed(idle.sock) == b""
    idle.close()
    # ...the in-flight one waits for its response.
    time.sleep(0.3)
    assert server.process.poll() is None
    assert not in_flight.done()
    worker_layer.send(message["reply_channel"], {"status": 200, "content": b"drained"})
    reply = in_flight.result(10)
    assert (reply.status, reply.body) == (200, b"drained")
    assert server.process.wait(10) == 0


def test_sigterm_gives_up_after_shutdown_grace(start_server, worker_layer, background):
    server = start_server("--shutdown-grace", "1")
    in_flight = background.submit(http_request, server.port, "GET", "/never-answered")
    receive(worker_layer, "http.request")
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(10) == 0
    elapsed = time.monotonic() - started
    assert 0.8 <= elapsed < 4
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        in_flight.result(10)


# -- 13. many connections ---------------------------------------------------------------------------

REQUEST = b"GET /soak HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def one_connection(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(REQUEST)
        return read_until_closed(sock)


@pytest.mark.slow
def test_ten_thousand_connections_do_not_leak_memory(start_server, worker_layer):
    server = start_server("--access-log", "/dev/null")
    with EchoWorker(worker_layer) as worker:
        for _ in range(500):
            assert one_connection(server.port).endswith(b"GET /soak")
        before = server.rss_kb()
        started = time.monotonic()
        for i in range(9500):
            raw = one_connection(server.port)
            assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"GET /soak"), (i, raw[:200])
        elapsed = time.monotonic() - started
        after = server.rss_kb()
    assert worker.handled == 10_000
    assert after - before < 20 * 1024, f"RSS grew from {before} kB to {after} kB"
    assert elapsed < 60
