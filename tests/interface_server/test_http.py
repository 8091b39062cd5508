"""HTTP through the real interface server: the test plays the client and, over Redis, the worker.

Every test starts an `interface-server` subprocess (see `conftest.start_server`) and
answers its `http.request` messages itself through `worker_layer`.
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import ipaddress
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.waiting import wait_for

from .harness import (
    EchoWorker,
    ResponseReader,
    assert_nothing_on,
    free_port,
    http_request,
    raw_exchange,
    read_until_closed,
    receive,
)

MESSAGE_KEYS = {
    "reply_channel",
    "http_version",
    "method",
    "scheme",
    "path",
    "query_string",
    "root_path",
    "headers",
    "body",
    "client",
    "server",
}


@pytest.fixture
def background():
    """Run blocking client calls in threads while the test plays the worker."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        yield pool


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def status_of(raw: bytes) -> int:
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return int(raw[9:12])


def assert_serving(server, worker_layer, background, path: str = "/still-alive") -> None:
    """A normal request right now gets its response: the server is alive and well."""
    future = background.submit(http_request, server.port, "GET", path)
    _, message = receive(worker_layer, "http.request")
    assert message["path"] == path
    worker_layer.send(message["reply_channel"], {"status": 200, "content": b"ok " + path.encode()})
    reply = future.result(10)
    assert (reply.status, reply.body) == (200, b"ok " + path.encode())


# -- 1. the http.request message ----------------------------------------------------------


def test_request_message_has_every_key(start_server, worker_layer):
    server = start_server()
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /caf%C3%A9/a%20b%2Fc?x=%20y&z=a+b&caf%C3%A9 HTTP/1.1\r\n"
            b"Host: example.com\r\n"
            b"X-Dup: one\r\n"
            b"CONTENT-Type: text/plain\r\n"
            b"x-dup: two\r\n"
            b"X_Forwarded_Spoof: evil\r\n"
            b"Content-Length: 11\r\n"
            b"\r\n"
            b"hello\x00world"
        )
        _, message = receive(worker_layer, "http.request")
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"done"})
        response, body = ResponseReader(sock).next(b"POST")
        local_port = sock.getsockname()[1]
    assert (response.status_code, body) == (200, b"done")

    assert set(message) == MESSAGE_KEYS
    assert isinstance(message["reply_channel"], str)
    assert message["reply_channel"].startswith(server.reply_prefix())
    assert len(message["reply_channel"]) > len(server.reply_prefix())
    assert message["http_version"] == "1.1"
    assert message["method"] == "POST"
    assert message["scheme"] == "http"
    assert message["path"] == "/café/a b/c"
    assert message["query_string"] == b"x=%20y&z=a+b&caf%C3%A9"
    assert isinstance(message["query_string"], bytes)
    assert message["root_path"] == ""
    assert message["headers"] == [
        [b"host", b"example.com"],
        [b"x-dup", b"one"],
        [b"content-type", b"text/plain"],
        [b"x-dup", b"two"],
        [b"content-length", b"11"],
    ]
    assert message["body"] == b"hello\x00world"
    assert message["client"] == ["127.0.0.1", local_port]
    assert message["server"] == ["127.0.0.1", server.port]


def test_reply_channels_are_unique_per_request(start_server, worker_layer, background):
    server = start_server()
    futures = [background.submit(http_request, server.port, "GET", f"/{i}") for i in range(3)]
    messages = [receive(worker_layer, "http.request")[1] for _ in range(3)]
    assert len({m["reply_channel"] for m in messages}) == 3
    for message in messages:
        worker_layer.send(message["reply_channel"], {"status": 200, "content": message["path"].encode()})
    assert sorted(f.result(10).body for f in futures) == [b"/0", b"/1", b"/2"]


def test_target_forms_and_encoded_question_mark(start_server, worker_layer):
    server = start_server()
    requests = [
        (b"GET http://example.com/abs/p%20q?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", "/abs/p q", b"x=1"),
        (b"GET /a%3Fb?c=%3F HTTP/1.1\r\nHost: x\r\n\r\n", "/a?b", b"c=%3F"),
        (b"GET /empty? HTTP/1.1\r\nHost: x\r\n\r\n", "/empty", b""),
        (b"GET /%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\n", "/../x", b""),
    ]
    with connect(server.port) as sock:
        reader = ResponseReader(sock)
        for data, path, query in requests:
            sock.sendall(data)
            _, message = receive(worker_layer, "http.request")
            worker_layer.send(message["reply_channel"], {"status": 200})
            assert reader.next()[0].status_code == 200
            assert (message["path"], message["query_string"]) == (path, query), data


def test_expect_100_continue(start_server, worker_layer):
    server = start_server()
    with connect(server.port) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"hello")
        _, message = receive(worker_layer, "http.request")
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"thanks"})
        response, body = ResponseReader(sock).next(b"POST")
    assert message["body"] == b"hello"
    assert (response.status_code, body) == (200, b"thanks")


def test_http_1_0_request_and_lowercase_method(start_server, worker_layer, background):
    server = start_server()
    future = background.submit(raw_exchange, ("127.0.0.1", server.port), b"get /old?q HTTP/1.0\r\n\r\n")
    _, message = receive(worker_layer, "http.request")
    worker_layer.send(message["reply_channel"], {"status": 200, "content": b"for 1.0"})
    raw = future.result(10)
    assert message["http_version"] == "1.0"
    assert message["method"] == "GET"
    assert message["path"] == "/old"
    assert message["query_string"] == b"q"
    assert message["headers"] == []
    assert message["body"] == b""
    assert status_of(raw) == 200
    assert raw.endswith(b"\r\n\r\nfor 1.0")


def test_root_path_from_option_and_header(start_server, worker_layer, background):
    server = start_server("--root-path", "/forum")
    future = background.submit(http_request, server.port, "GET", "/forum/topic")
    _, message = receive(worker_layer, "http.request")
    worker_layer.send(message["reply_channel"], {"status": 204})
    assert future.result(10).status == 204
    assert message["root_path"] == "/forum"
    assert message["path"] == "/forum/topic"

    headers = {"Daphne-Root-Path": "/other%20root", "X-After": "kept"}
    future = background.submit(http_request, server.port, "GET", "/x", headers=headers)
    _, message = receive(worker_layer, "http.request")
    worker_layer.send(message["reply_channel"], {"status": 204})
    assert future.result(10).status == 204
    assert message["root_path"] == "/other root"
    names = [name for name, _ in message["headers"]]
    assert b"daphne-root-path" not in names
    assert [b"x-after", b"kept"] in message["headers"]


# -- 2. responses ----------------------------------------------------------------------


def test_response_status_headers_and_content(start_server, worker_layer, background):
    server = start_server()
    future = background.submit(http_request, server.port, "GET", "/cookies")
    _, message = receive(worker_layer, "http.request")
    worker_layer.send(
        message["reply_channel"],
        {
            "status": 201,
            "headers": [[b"Set-Cookie", b"a=1"], [b"X-Thing", b"v"], [b"set-cookie", b"b=2; Path=/"]],
            "content": b"created!",
        },
    )
    reply = future.result(10)
    assert reply.status == 201
    assert reply.headers.get_all("Set-Cookie") == ["a=1", "b=2; Path=/"]
    assert reply.headers["X-Thing"] == "v"
    assert reply.headers["Content-Length"] == "8"
    assert reply.headers["Server"] == "interface-server"
    assert reply.body == b"created!"


@pytest.mark.parametrize("status", [204, 304])
def test_bodyless_statuses_send_no_body(start_server, worker_layer, status):
    server = start_server()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/nothing")
        _, message = receive(worker_layer, "http.request")
        worker_layer.send(message["reply_channel"], {"status": status, "content": b"must not be sent"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (status, b"")
        conn.request("GET", "/next")
        _, message = receive(worker_layer, "http.request")
        worker_layer.send(
            message["reply_channel"], {"status": 200, "content": b"next", "headers": [[b"server", b"mine"]]}
        )
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"next")
        assert response.headers.get_all("Server") == ["mine"]
    finally:
        conn.close()


def test_streamed_response_to_http_1_0_client_is_close_delimited(start_server, worker_layer, background):
    server = start_server()
    future = background.submit(raw_exchange, ("127.0.0.1", server.port), b"GET /stream10 HTTP/1.0\r\n\r\n")
    _, message = receive(worker_layer, "http.request")
    worker_layer.send(message["reply_channel"], {"status": 200, "content": b"alpha,", "more_content": True})
    worker_layer.send(message["reply_channel"], {"content": b"beta,", "more_content": True})
    worker_layer.send(message["reply_channel"], {"content": b"gamma"})
    raw = future.result(10)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert status_of(raw) == 200
    assert b"transfer-encoding" not in head.lower()
    assert body == b"alpha,beta,gamma"


def test_streamed_response_arrives_chunk_by_chunk(start_server, worker_layer):
    server = start_server()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/stream")
        _, message = receive(worker_layer, "http.request")
        reply_channel = message["reply_channel"]
        worker_layer.send(
            reply_channel,
            {"status": 200, "headers": [[b"X-Streamed", b"yes"]], "content": b"one-", "more_content": True},
        )
        response = conn.getresponse()
        assert response.status == 200
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert response.headers["X-Streamed"] == "yes"
        assert response.headers["Content-Length"] is None
        # Each part reaches the client before the next one is even sent.
        assert response.read(4) == b"one-"
        worker_layer.send(reply_channel, {"content": b"two-", "more_content": True})
        assert response.read(4) == b"two-"
        worker_layer.send(reply_channel, {"content": b"", "more_content": True})
        worker_layer.send(reply_channel, {"content": b"three"})
        assert response.read() == b"three"
        # The connection stays usable for the next request.
        conn.request("GET", "/after")
        _, message = receive(worker_layer, "http.request")
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"after"})
        assert conn.getresponse().read() == b"after"
    finally:
        conn.close()


def test_head_response_has_no_body(start_server, worker_layer):
    server = start_server()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("HEAD", "/thing")
        _, message = receive(worker_layer, "http.request")
        assert message["method"] == "HEAD"
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"a body HEAD must not carry"})
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b""
        # Had body bytes been written, they would corrupt the next response on this connection.
        conn.request("GET", "/next")
        _, message = receive(worker_layer, "http.request")
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"next"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"next")
    finally:
        conn.close()


def test_head_response_on_raw_socket_has_no_body_bytes(start_server, worker_layer):
    server = start_server()
    with connect(server.port) as sock:
        sock.sendall(b"HEAD /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        _, message = receive(worker_layer, "http.request")
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"SECRET-BODY"})
        raw = read_until_closed(sock)
    assert status_of(raw) == 200
    assert b"SECRET-BODY" not in raw
    assert raw.endswith(b"\r\n\r\n")


def test_reply_without_status_is_a_500(start_server, worker_layer, background):
    server = start_server()
    future = background.submit(http_request, server.port, "GET", "/nostatus")
    _, message = receive(worker_layer, "http.request")
    worker_layer.send(message["reply_channel"], {"content": b"where is my status"})
    reply = future.result(10)
    assert reply.status == 500
    assert b"where is my status" not in reply.body
    assert_serving(server, worker_layer, background)


@pytest.mark.parametrize(
    "garbage",
    [{"foo": 1}, {"status": "200"}, {"status": 200, "content": "text, not bytes"}, {"status": 200, "headers": 5}],
    ids=["unknown-key", "str-status", "str-content", "bad-headers"],
)
def test_garbage_reply_is_logged_and_server_keeps_serving(start_server, worker_layer, background, garbage):
    server = start_server()
    future = background.submit(http_request, server.port, "GET", "/garbage")
    _, message = receive(worker_layer, "http.request")
    worker_layer.send(message["reply_channel"], garbage)
    assert future.result(10).status == 500
    assert_serving(server, worker_layer, background)
    assert "Bad response on " + message["reply_channel"] in server.output()


def test_second_status_while_streaming_aborts_the_connection(start_server, worker_layer, background):
    server = start_server()
    with connect(server.port) as sock:
        sock.sendall(b"GET /twice HTTP/1.1\r\nHost: x\r\n\r\n")
        _, message = receive(worker_layer, "http.request")
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"part-one", "more_content": True})
        raw = b""
        while b"part-one" not in raw:  # the response has really started on the wire
            data = sock.recv(65536)
            assert data, raw
            raw += data
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"second response"})
        raw += read_until_closed(sock)
    assert status_of(raw) == 200
    assert b"part-one" in raw
    assert b"second response" not in raw
    # Aborted: the chunked body never got its terminating zero-length chunk.
    assert not raw.endswith(b"0\r\n\r\n")
    assert_serving(server, worker_layer, background)


def test_reply_to_unknown_channel_is_dropped(start_server, worker_layer, background):
    server = start_server()
    prefix = server.reply_prefix()
    worker_layer.send(prefix + "nosuch", {"status": 200, "content": b"nobody asked"})
    worker_layer.send(prefix + "nosuch2", {"foo": "garbage too"})
    assert_serving(server, worker_layer, background)
    # The stray replies were consumed from the process channel, not left to pile up.
    assert worker_layer.receive([prefix], block=False) == (None, None)


def test_late_reply_after_response_finished_is_ignored(start_server, worker_layer):
    server = start_server()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/first")
        _, message = receive(worker_layer, "http.request")
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"first"})
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"late duplicate"})
        assert conn.getresponse().read() == b"first"
        time.sleep(0.2)
        conn.request("GET", "/second")
        _, message = receive(worker_layer, "http.request")
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"second"})
        assert conn.getresponse().read() == b"second"
    finally:
        conn.close()


# -- 3. keep-alive and pipelining ------------------------------------------------------------


def test_keep_alive_serves_two_requests_on_one_connection(start_server, worker_layer):
    server = start_server()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        clients = []
        for i in range(2):
            conn.request("GET", f"/k{i}")
            _, message = receive(worker_layer, "http.request")
            clients.append(message["client"])
            worker_layer.send(message["reply_channel"], {"status": 200, "content": b"k%d" % i})
            response = conn.getresponse()
            assert response.read() == b"k%d" % i
            assert response.getheader("Connection") != "close"
        assert clients[0] == clients[1] == ["127.0.0.1", conn.sock.getsockname()[1]]
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order(start_server, worker_layer):
    """Three requests in one write; the worker answers whatever it holds newest-first."""
    server = start_server()
    with connect(server.port) as sock:
        sock.sendall(
            b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /p3 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        seen = []
        while len(seen) < 3:
            held = [receive(worker_layer, "http.request")[1]]
            while True:  # collect whatever else the server has sent by now
                channel, message = worker_layer.receive(["http.request"], block=False)
                if channel is None:
                    time.sleep(0.3)
                    channel, message = worker_layer.receive(["http.request"], block=False)
                if channel is None:
                    break
                held.append(message)
            for message in reversed(held):
                worker_layer.send(
                    message["reply_channel"], {"status": 200, "content": b"answer " + message["path"].encode()}
                )
            seen.extend(held)
        reader = ResponseReader(sock)
        bodies = [reader.next(method)[1] for method in (b"GET", b"POST", b"GET")]
    assert [m["path"] for m in seen] == ["/p1", "/p2", "/p3"]
    assert seen[1]["body"] == b"abc"
    assert bodies == [b"answer /p1", b"answer /p2", b"answer /p3"]


def test_big_response_to_a_slow_reader_then_a_pipelined_one_arrive_whole_and_in_order(start_server, worker_layer):
    """A response larger than the socket buffer is partly sent at once and the rest queued; the next
    pipelined response must wait behind it, byte for byte."""
    server = start_server()
    big = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32)  # 3 MB: far more than the socket buffers
    with connect(server.port, timeout=20) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /small HTTP/1.1\r\nHost: x\r\n\r\n")
        _, first = receive(worker_layer, "http.request")
        parts = [big[i : i + 900_000] for i in range(0, len(big), 900_000)]  # under the layer's 1 MB limit
        for i, part in enumerate(parts):
            message = {"content": part, "more_content": i < len(parts) - 1}
            worker_layer.send(first["reply_channel"], {"status": 200, **message} if i == 0 else message)
        time.sleep(0.5)  # the client reads nothing yet: the server's kernel buffer fills up
        _, second = receive(worker_layer, "http.request")
        worker_layer.send(second["reply_channel"], {"status": 200, "content": b"small"})
        reader = ResponseReader(sock)
        first_body = reader.next(b"GET")[1]
        second_body = reader.next(b"GET")[1]
    assert [first["path"], second["path"]] == ["/big", "/small"]
    assert len(first_body) == len(big) and first_body == big
    assert second_body == b"small"


# -- 4. malformed requests ----------------------------------------------------------------

MALFORMED = [
    ("garbage line", b"GARBAGE\r\n\r\n", {400}),
    ("bad header line", b"GET / HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n", {400}),
    ("bad percent-encoded path", b"GET /%ff HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    ("overlong percent-encoded path", b"GET /%C0%AF HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    ("raw non-ASCII path", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    ("no host", b"GET / HTTP/1.1\r\n\r\n", {400}),
    ("bad content-length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n", {400}),
    ("oversized headers", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", {400, 431}),
    ("oversized request line", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {400, 414, 431}),
]


def test_malformed_requests_get_400_and_server_keeps_serving(start_server, worker_layer, background):
    server = start_server()
    with EchoWorker(worker_layer) as worker:
        for name, data, statuses in MALFORMED:
            raw = raw_exchange(("127.0.0.1", server.port), data)
            assert raw, f"{name}: no response at all"
            assert status_of(raw) in statuses, f"{name}: {raw[:200]!r}"
            reply = http_request(server.port, "GET", "/ok")
            assert (reply.status, reply.body) == (200, b"GET /ok"), name
        # None of the malformed requests reached the application (the worker counts after replying).
        wait_for(lambda: worker.handled >= len(MALFORMED), 2)
        time.sleep(0.2)
        assert worker.handled == len(MALFORMED)


# -- 5. request bodies ----------------------------------------------------------------------


def read_body_channel(worker_layer, body_channel: str) -> list[dict]:
    chunks = []
    while True:
        _, chunk = receive(worker_layer, body_channel)
        chunks.append(chunk)
        if chunk.get("closed") or not chunk.get("more_content", False):
            return chunks


def test_large_body_streams_through_body_channel(start_server, worker_layer, background):
    server = start_server()
    body = bytes(range(256)) * 4096  # 1 MiB
    future = background.submit(http_request, server.port, "POST", "/upload", body=body)
    _, message = receive(worker_layer, "http.request")
    assert message["body_channel"].startswith("http.request.body?")
    assert message["body"] == b""
    chunks = read_body_channel(worker_layer, message["body_channel"])
    assert len(chunks) >= 4  # 256 KiB pieces
    assert all(c["more_content"] for c in chunks[:-1])
    assert not any(c.get("closed") for c in chunks)
    received = message["body"] + b"".join(c["content"] for c in chunks)
    assert len(received) == len(body)
    assert received == body
    worker_layer.send(
        message["reply_channel"], {"status": 200, "content": hashlib.sha256(received).hexdigest().encode()}
    )
    reply = future.result(10)
    assert (reply.status, reply.body) == (200, hashlib.sha256(body).hexdigest().encode())


def test_small_body_arrives_inline(start_server, worker_layer, background):
    server = start_server()
    body = b"name=value&x=" + b"y" * 1000
    future = background.submit(http_request, server.port, "PUT", "/small", body=body)
    _, message = receive(worker_layer, "http.request")
    assert "body_channel" not in message
    assert message["body"] == body
    assert message["method"] == "PUT"
    worker_layer.send(message["reply_channel"], {"status": 200})
    assert future.result(10).status == 200


def test_chunked_request_body_streams_through_body_channel(start_server, worker_layer):
    """A chunked body is held until it passes the 256 KiB threshold, then streams."""
    server = start_server()
    pieces = [b"first piece,", b"x" * 300_000, b"", b"last"]
    pieces = [p for p in pieces if p]
    with connect(server.port) as sock:
        sock.sendall(b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.sendall(b"%x\r\n%s\r\n" % (len(pieces[0]), pieces[0]))
        assert_nothing_on(worker_layer, "http.request", 0.3)
        for piece in pieces[1:]:
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        _, message = receive(worker_layer, "http.request")
        assert "body_channel" in message
        sock.sendall(b"0\r\n\r\n")
        chunks = read_body_channel(worker_layer, message["body_channel"])
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"got it"})
        response, body = ResponseReader(sock).next(b"POST")
    assert message["body"] + b"".join(c["content"] for c in chunks) == b"".join(pieces)
    assert (response.status_code, body) == (200, b"got it")


def test_http_timeout_starts_once_the_body_is_complete(start_server, worker_layer):
    """A slow upload the application is reading is not cut by -t: the wait for a reply starts after the body."""
    server = start_server("-t", "1")
    piece = b"p" * (256 * 1024 + 1)  # the first piece takes the body past the streaming threshold
    with connect(server.port) as sock:
        sock.sendall(b"POST /slow-upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        message = None
        received = b""
        for _ in range(4):  # 4 x 0.5 s: the upload takes twice the http timeout
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            if message is None:
                _, message = receive(worker_layer, "http.request")
            _, chunk = receive(worker_layer, message["body_channel"])
            assert not chunk.get("closed"), "the server gave up on the request while the body was arriving"
            received += chunk["content"]
            time.sleep(0.5)
        sock.sendall(b"0\r\n\r\n")
        chunks = read_body_channel(worker_layer, message["body_channel"])
        received += b"".join(c.get("content", b"") for c in chunks)
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"%d" % len(received)})
        response, body = ResponseReader(sock).next(b"POST")
    assert (response.status_code, body) == (200, b"%d" % (4 * len(piece)))


def test_body_over_limit_gets_413(start_server, worker_layer, background):
    server = start_server("--max-request-body-size", "1000")
    reply = http_request(server.port, "POST", "/big", body=b"x" * 2000)
    assert reply.status == 413
    assert_nothing_on(worker_layer, "http.request", 0.3)
    # Exactly at the limit is fine.
    future = background.submit(http_request, server.port, "POST", "/fits", body=b"y" * 1000)
    _, message = receive(worker_layer, "http.request")
    assert message["body"] == b"y" * 1000
    worker_layer.send(message["reply_channel"], {"status": 200})
    assert future.result(10).status == 200


def test_chunked_body_over_limit_gets_413_and_app_is_told(start_server, worker_layer, background):
    # A limit under the 256 KiB streaming threshold: the body is held whole, so the application never sees it.
    # (With a limit over the threshold, whether a body that crosses both is dispatched before its 413 depends
    # on how the bytes arrive; the second part covers the dispatched case.)
    small = start_server("--max-request-body-size", "200000")
    with connect(small.port) as sock:
        sock.sendall(b"POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        # One byte over the limit: the server has read everything when it answers and closes.
        sock.sendall(b"%x\r\n%s\r\n" % (150_000, b"y" * 150_000))
        sock.sendall(b"%x\r\n%s\r\n" % (50_001, b"y" * 50_001))
        assert status_of(read_until_closed(sock)) == 413
    assert_nothing_on(worker_layer, "http.request", 0.3)
    server = start_server("--max-request-body-size", "300000")
    with connect(server.port) as sock:
        sock.sendall(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.sendall(b"%x\r\n%s\r\n" % (270_000, b"z" * 270_000))
        _, message = receive(worker_layer, "http.request")
        assert message["path"] == "/big"
        sock.sendall(b"%x\r\n%s\r\n" % (30_001, b"z" * 30_001))
        raw = read_until_closed(sock)
    assert status_of(raw) == 413
    # The application was already reading the body: it must learn that no more is coming.
    chunks = read_body_channel(worker_layer, message["body_channel"])
    assert chunks[-1].get("closed") is True
    assert_serving(server, worker_layer, background)


def test_incomplete_small_body_never_reaches_the_app(start_server, worker_layer, background):
    """Content-Length 10, 3 bytes, then the client leaves: the request was never dispatched."""
    server = start_server()
    with connect(server.port) as sock:
        sock.sendall(b"POST /partial HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        time.sleep(0.2)
    assert_nothing_on(worker_layer, ["http.request", "http.disconnect"], 0.5)
    assert_serving(server, worker_layer, background)


def test_client_leaving_mid_streamed_body_sends_closed_and_disconnect(start_server, worker_layer, background):
    server = start_server()
    with connect(server.port) as sock:
        sock.sendall(b"POST /partial-big HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
        sock.sendall(b"a" * 300_000)
        _, message = receive(worker_layer, "http.request")
        _, first = receive(worker_layer, message["body_channel"])
        assert first["content"] == b"a" * (256 * 1024)
        assert first["more_content"] is True
    chunks = read_body_channel(worker_layer, message["body_channel"])
    assert chunks[-1] == {"closed": True}
    _, disconnect = receive(worker_layer, "http.disconnect")
    assert disconnect == {"reply_channel": message["reply_channel"], "path": "/partial-big"}
    assert_serving(server, worker_layer, background)


def test_client_leaving_while_waiting_sends_http_disconnect(start_server, worker_layer, background):
    server = start_server()
    with connect(server.port) as sock:
        sock.sendall(b"GET /long-poll?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        _, message = receive(worker_layer, "http.request")
    _, disconnect = receive(worker_layer, "http.disconnect")
    assert disconnect == {"reply_channel": message["reply_channel"], "path": "/long-poll"}
    # A reply to the departed client goes nowhere and breaks nothing.
    worker_layer.send(message["reply_channel"], {"status": 200, "content": b"too late"})
    assert_serving(server, worker_layer, background)
    # Completed requests send no http.disconnect.
    assert_nothing_on(worker_layer, "http.disconnect", 0.3)


# -- 8. proxy headers --------------------------------------------------------------------------

PROXY_HEADERS = {"X-Forwarded-For": "10.1.2.3, 10.0.0.1", "X-Forwarded-Proto": "https"}


def one_message(server, worker_layer, background, headers) -> dict:
    future = background.submit(http_request, server.port, "GET", "/proxied", headers=headers)
    _, message = receive(worker_layer, "http.request")
    worker_layer.send(message["reply_channel"], {"status": 200})
    assert future.result(10).status == 200
    return message


def test_proxy_headers_are_used_with_the_flag(start_server, worker_layer, background):
    server = start_server("--proxy-headers")
    message = one_message(server, worker_layer, background, {**PROXY_HEADERS, "X-Forwarded-Port": "8443"})
    assert message["client"] == ["10.1.2.3", 8443]
    assert message["scheme"] == "https"
    message = one_message(server, worker_layer, background, PROXY_HEADERS)
    assert message["client"] == ["10.1.2.3", 0]
    assert message["scheme"] == "https"
    message = one_message(server, worker_layer, background, {})
    assert message["client"][0] == "127.0.0.1"
    assert message["client"][1] > 0
    assert message["scheme"] == "http"


def test_proxy_headers_are_ignored_without_the_flag(start_server, worker_layer, background):
    server = start_server()
    message = one_message(server, worker_layer, background, {**PROXY_HEADERS, "X-Forwarded-Port": "8443"})
    assert message["client"][0] == "127.0.0.1"
    assert message["client"][1] not in (0, 8443)
    assert message["scheme"] == "http"
    assert [b"x-forwarded-for", b"10.1.2.3, 10.0.0.1"] in message["headers"]


# -- 9-11. other ways to listen ---------------------------------------------------------------


def test_unix_socket(start_server, worker_layer, background, tmp_path):
    path = str(tmp_path / "server.sock")
    server = start_server("-u", path)
    future = background.submit(
        raw_exchange, path, b"GET /over-unix HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", family=socket.AF_UNIX
    )
    _, message = receive(worker_layer, "http.request")
    worker_layer.send(message["reply_channel"], {"status": 200, "content": b"unix ok"})
    raw = future.result(10)
    assert status_of(raw) == 200
    assert raw.endswith(b"unix ok")
    assert message["path"] == "/over-unix"
    assert message["scheme"] == "http"
    assert message["client"] is None
    assert message["server"] is None
    # The default TCP port was not bound as well.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
        pass


def make_self_signed(tmp_path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_path), str(cert_path)


def test_tls_endpoint(start_server, worker_layer, background, tmp_path):
    key, cert = make_self_signed(tmp_path)
    port = free_port()
    start_server("-e", f"ssl:{port}:privateKey={key}:certKey={cert}:interface=127.0.0.1", port=port)
    context = ssl.create_default_context(cafile=cert)

    def fetch():
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        try:
            conn.request("GET", "/secure?q=1")
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    future = background.submit(fetch)
    _, message = receive(worker_layer, "http.request")
    worker_layer.send(message["reply_channel"], {"status": 200, "content": b"over tls"})
    assert future.result(10) == (200, b"over tls")
    assert message["scheme"] == "https"
    assert message["path"] == "/secure"
    assert message["server"] == ["127.0.0.1", port]
    # Plain HTTP on the TLS port gets no HTTP response.
    raw = raw_exchange(("127.0.0.1", port), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not raw.startswith(b"HTTP/1.1 200")
    assert_nothing_on(worker_layer, "http.request", 0.2)


def test_listening_file_descriptor(start_server, worker_layer, background):
    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        fd = listener.fileno()
        start_server("--fd", str(fd), pass_fds=(fd,), port=port)
        future = background.submit(http_request, port, "GET", "/via-fd")
        _, message = receive(worker_layer, "http.request")
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"fd ok"})
        reply = future.result(10)
        assert (reply.status, reply.body) == (200, b"fd ok")
        assert message["server"] == ["127.0.0.1", port]
    finally:
        listener.close()
