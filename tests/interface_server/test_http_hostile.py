"""Hostile request framing on raw sockets, through the real interface server, on both h11 builds.

The test plays the client and, over Redis, a worker that answers every `http.request`
with 200 and records it. For each bad request the server must answer once (400, 501 or
505), close the connection, and dispatch nothing: no `http.request` (nor a smuggled
second one) reaches the channel layer.
"""

from __future__ import annotations

import socket
import string
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .harness import http_request, raw_exchange, read_until_closed, receive

CHUNKED_HEAD = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
POST = b"POST /a HTTP/1.1\r\nHost: x\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


class RecordingWorker(threading.Thread):
    """Answers every `http.request` with 200 and keeps the paths it saw."""

    def __init__(self, layer) -> None:
        super().__init__(name="recording-worker", daemon=True)
        self.layer = layer
        self.stopping = threading.Event()
        self.paths: list[str] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            channel, message = self.layer.receive(["http.request"], block=True)
            if channel is not None:
                self.paths.append(message["path"])
                self.layer.send(message["reply_channel"], {"status": 200, "content": b"served"})

    def settle(self, wait: float = 0.15) -> list[str]:
        """The paths seen so far, after giving a late message `wait` seconds to arrive; then forget them."""
        time.sleep(wait)
        paths, self.paths = self.paths, []
        return paths


@pytest.fixture
def served(start_server_each_h11, worker_layer):
    server = start_server_each_h11()
    worker = RecordingWorker(worker_layer)
    worker.start()
    yield server, worker
    worker.stopping.set()
    worker.join(5)


def statuses(raw: bytes) -> list[int]:
    """The status of every response in `raw` (a client would see this many responses)."""
    parts = raw.split(b"HTTP/1.1 ")[1:]
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return [int(part[:3]) for part in parts]


def assert_refused(served, data: bytes, expected: set[int], name: str) -> bytes:
    """One response with a status in `expected`, the connection closed, nothing dispatched; then the server serves."""
    server, worker = served
    raw = raw_exchange(("127.0.0.1", server.port), data)  # raises on timeout: the server must close
    assert raw, f"{name}: no response at all"
    got = statuses(raw)
    assert len(got) == 1 and got[0] in expected, f"{name}: {raw[:300]!r}"
    assert b"served" not in raw, name
    assert worker.settle() == [], f"{name}: reached the application"
    reply = http_request(server.port, "GET", "/control")
    assert (reply.status, reply.body) == (200, b"served"), name
    assert worker.settle(0) == ["/control"]  # it answered, so it has recorded it
    return raw


# -- request smuggling: Content-Length with Transfer-Encoding -------------------------------

SMUGGLING = [
    (
        "CL then TE, chunked body ends early",
        POST + b"Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    ),
    (
        "TE then CL, chunked body ends early",
        POST + b"Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + SMUGGLED,
    ),
    (
        "CL covers the smuggled request",
        POST + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s" % (5 + len(SMUGGLED), SMUGGLED),
    ),
    (
        "upper-case TE",
        POST + b"content-length: 0\r\nTRANSFER-ENCODING: CHUNKED\r\n\r\n0\r\n\r\n",
    ),
    (
        "CL zero, TE",
        POST + b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n" + SMUGGLED,
    ),
    ("TE in HTTP/1.0", b"POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED),
]


def test_content_length_with_transfer_encoding_is_refused_and_closed(served):
    for name, data in SMUGGLING:
        raw = assert_refused(served, data, {400}, name)
        assert b"connection: close" in raw.lower(), name


# -- not HTTP/1.x ----------------------------------------------------------------------------

VERSIONS = [
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ("HTTP/2 preface and a SETTINGS frame", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"),
    ("GET as HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n"),
    ("GET as HTTP/3.0", b"GET / HTTP/3.0\r\nHost: x\r\n\r\n"),
    ("GET as HTTP/0.9", b"GET / HTTP/0.9\r\nHost: x\r\n\r\n"),
]


def test_other_http_versions_get_505_and_close(served):
    for name, data in VERSIONS:
        assert_refused(served, data, {505}, name)


# -- malformed bodies and framing headers -------------------------------------------------------

MALFORMED_FRAMING = [
    ("chunk size not hex", CHUNKED_HEAD + b"zz\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk size 0x-prefixed", CHUNKED_HEAD + b"0x5\r\nhello\r\n0\r\n\r\n", {400}),
    ("negative chunk size", CHUNKED_HEAD + b"-5\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk size with leading space", CHUNKED_HEAD + b" 5\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk size 2**64 + 5", CHUNKED_HEAD + b"10000000000000005\r\nhello", {400}),
    ("chunk size of 20 hex digits", CHUNKED_HEAD + b"ffffffffffffffffffff\r\nhello", {400}),
    ("chunk size of 21 hex digits", CHUNKED_HEAD + b"fffffffffffffffffffff\r\nhello", {400}),
    ("chunk not followed by CRLF", CHUNKED_HEAD + b"5\r\nhelloXX0\r\n\r\n", {400}),
    ("bad trailer line", CHUNKED_HEAD + b"5\r\nhello\r\n0\r\nnot a header\r\n\r\n", {400}),
    (
        "two different Content-Lengths",
        POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        {400},
    ),
    ("Content-Length list that disagrees", POST + b"Content-Length: 5, 6\r\n\r\nhello!", {400}),
    ("negative Content-Length", POST + b"Content-Length: -5\r\n\r\nhello", {400}),
    ("signed Content-Length", POST + b"Content-Length: +5\r\n\r\nhello", {400}),
    ("hex Content-Length", POST + b"Content-Length: 0x5\r\n\r\nhello", {400}),
    ("huge Content-Length", POST + b"Content-Length: 99999999999999999999999\r\n\r\n", {400}),
    ("space before the colon", POST + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", {400}),
    ("NUL in a header value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", {400}),
    ("bare CR in the head", b"GET / HTTP/1.1\rHost: x\r\n\r\n", {400}),
    # RFC 9112 6.1 asks 400 when chunked is not the final coding and 501 for codings the
    # server does not know; h11 answers 501 to every Transfer-Encoding but `chunked`.
    ("gzip, chunked", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", {501}),
    (
        "chunked, identity",
        POST + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        {501},
    ),
    ("xchunked", POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", {501}),
    (
        "chunked twice",
        POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        {501},
    ),
]


def test_malformed_framing_is_refused_before_the_application_sees_it(served):
    for name, data, expected in MALFORMED_FRAMING:
        assert_refused(served, data, expected, name)


def test_chunked_body_that_never_ends_is_never_dispatched(served):
    """Valid chunks, no last chunk; and chunk lines ended by bare LF, which never end a line."""
    server, worker = served
    for data in (CHUNKED_HEAD + b"5\r\nhello\r\n" * 100, CHUNKED_HEAD + b"5\nhello\n0\n\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(data)
            assert worker.settle() == []
            time.sleep(0.3)
            assert worker.settle() == []
    assert worker.settle() == []
    assert http_request(server.port, "GET", "/control").status == 200


def test_small_chunked_body_arrives_whole_once_valid(served, worker_layer):
    """A chunked body under the streaming threshold is held until its last chunk, like a Content-Length one."""
    server, worker = served
    worker.stopping.set()
    worker.join(5)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(CHUNKED_HEAD + b"5\r\nhello\r\n1;ext=1\r\n \r\n")
        time.sleep(0.3)
        sock.sendall(b"5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n")
        _, message = receive(worker_layer, "http.request")
        assert message["body"] == b"hello world"
        assert "body_channel" not in message
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"ok"})
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")


def test_streamed_chunked_body_turning_malformed_closes_the_body_channel(served, worker_layer):
    """Past the threshold the body streams; a bad chunk then gives the consumer `closed`, never a last chunk."""
    server, worker = served
    worker.stopping.set()
    worker.join(5)
    piece = b"a" * 300_000
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(CHUNKED_HEAD + b"%x\r\n%s\r\n" % (len(piece), piece))
        _, message = receive(worker_layer, "http.request")
        assert message["body"] == b""
        _, first = receive(worker_layer, message["body_channel"])
        assert first == {"content": piece[: 256 * 1024], "more_content": True}
        sock.sendall(b"zz\r\nrest\r\n0\r\n\r\n")
        raw = read_until_closed(sock)
    assert statuses(raw) == [400]
    chunks = [first]
    while "closed" not in chunks[-1]:
        chunks.append(receive(worker_layer, message["body_channel"])[1])
    assert chunks[-1] == {"closed": True}
    assert all(chunk.get("more_content", True) for chunk in chunks)
    _, disconnect = receive(worker_layer, "http.disconnect")
    assert disconnect == {"reply_channel": message["reply_channel"], "path": "/upload"}


def test_bad_chunk_after_the_response_started_only_closes(served, worker_layer):
    """The application answered (streaming) before the body was read: a bad chunk then closes, no 400 is spliced in."""
    server, worker = served
    worker.stopping.set()
    worker.join(5)
    piece = b"b" * 300_000
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(CHUNKED_HEAD + b"%x\r\n%s\r\n" % (len(piece), piece))
        _, message = receive(worker_layer, "http.request")
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"early", "more_content": True})
        head = b""
        while not head.endswith(b"early\r\n"):
            head += sock.recv(4096)
        sock.sendall(b"zz\r\n")
        raw = head + read_until_closed(sock)
    assert statuses(raw) == [200]
    assert not raw.endswith(b"0\r\n\r\n")  # the response was cut, not completed
    chunks = []
    while not chunks or "closed" not in chunks[-1]:
        chunks.append(receive(worker_layer, message["body_channel"])[1])
    assert all(chunk.get("more_content", True) for chunk in chunks)


def test_obs_fold_is_folded_into_the_previous_value(served, worker_layer):
    """h11 replaces obs-fold with a space (RFC 9112 5.2 allows it): the folded line is no header of its own."""
    server, worker = served
    worker.stopping.set()
    worker.join(5)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /fold HTTP/1.1\r\nHost: x\r\nX-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"
        )
        _, message = receive(worker_layer, "http.request")
        worker_layer.send(message["reply_channel"], {"status": 200})
    assert [b"x-a", b"a Transfer-Encoding: chunked"] in message["headers"]
    assert not any(name == b"transfer-encoding" for name, _ in message["headers"])
    assert message["body"] == b"hello"


HEX = "0123456789abcdefABCDEF"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    digits=st.text(alphabet=HEX, min_size=0, max_size=18),
    junk=st.text(alphabet="gxz-+.,/:=_G ", min_size=1, max_size=3),
    where=st.integers(0, 20),
)
def test_any_chunk_size_line_with_junk_is_refused(served, digits, junk, where):
    """Hex digits with anything but a chunk extension (`;`) or trailing whitespace in them: 400, nothing dispatched."""
    line = (digits[:where] + junk + digits[where:]).encode()
    if line.rstrip(b" ") != line or not line.lstrip(string.hexdigits.encode()):
        line = b"g" + line  # keep the line invalid: OWS after the size is allowed, a plain size is valid
    assert_refused(served, CHUNKED_HEAD + line + b"\r\nhello\r\n0\r\n\r\n", {400}, repr(line))
