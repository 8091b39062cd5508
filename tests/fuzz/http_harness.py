"""One `HTTPProtocol` on a `StringTransport`, with a real `Server` on the in-memory layer and a fake reactor.

The test plays the client (bytes in) and the worker (replies to each
`http.request`, delivered as the reply reader would), and checks what the
server wrote with an h11 client.
"""

from __future__ import annotations

from typing import Any

import h11
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from channels_core.layers import InMemoryChannelLayer
from interface_server.config import ServerConfig
from interface_server.http_protocol import HTTPProtocol
from interface_server.server import Server

from .support import FakeReactor

# Small limits so short inputs reach every path: streamed bodies, too-large bodies, timeouts.
CONFIG = dict(body_stream_threshold=16, body_chunk_size=8, max_request_body_size=512, http_timeout=30.0)


class Transport(StringTransport):
    """A `StringTransport` that, like a TCP transport, lets a producer be unregistered twice (Autobahn does)."""

    def unregisterProducer(self) -> None:
        self.producer = None
        self.streaming = None


class InlineSenderThread:
    """Stands in for `sender.SenderThread`: runs each turn's sends at once, in the test's thread.

    The real thread makes every layer call off the reactor; here the layer
    is in memory and the test wants each input's effects to be settled, in
    order, when `run_due` returns (`SendQueues` is the same code either way).
    """

    stopping = False

    def __init__(self, sender: Any) -> None:
        self.sender = sender

    def is_alive(self) -> bool:
        return True

    def hand_over(self, items: list) -> None:
        queues = self.sender.queues
        queues.add(items)
        done = queues.step()
        if done:
            self.sender.reactor.callLater(0, self.sender._done, done)

    def stop(self) -> None:
        self.stopping = True


class Connection:
    """A server, one client connection to it, and the channel layer behind it."""

    def __init__(self, clock: FakeReactor, **config: Any) -> None:
        self.clock = clock
        self.layer = InMemoryChannelLayer(capacity=1000)
        self.server = Server(self.layer, ServerConfig(**{**CONFIG, **config}))
        self.server.sender.thread = InlineSenderThread(self.server.sender)
        self.transport = Transport()
        self.protocol: HTTPProtocol = self.server.factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)

    def feed(self, data: bytes, pieces: int = 1) -> None:
        """Send `data` in `pieces` reads (as TCP may split it), running what is due after each."""
        size = max(1, len(data) // max(1, pieces))
        for start in range(0, len(data), size):
            if self.transport.disconnecting:
                return
            self.protocol.dataReceived(data[start : start + size])
            self.clock.run_due()

    def requests(self) -> list[dict]:
        """Every `http.request` the server sent so far (taken off the channel)."""
        out = []
        while True:
            channel, message = self.layer.receive(["http.request"], block=False)
            if channel is None:
                return out
            out.append(message)

    def reply(self, reply_channel: str, *messages: dict) -> None:
        """Deliver reply messages as the reply reader does (after a msgpack round trip, as from a real layer)."""
        for message in messages:
            decoded = self.layer.serializer.loads(self.layer.serializer.dumps(message))
            self.server.deliver_replies([(reply_channel, decoded)])
            self.clock.run_due()

    def close(self) -> None:
        """The connection ends: the client left, or the transport finished the close the server asked for."""
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.clock.run_due()

    def written(self) -> bytes:
        return self.transport.value()


def methods_of(data: bytes) -> list[bytes]:
    """The methods of the requests in `data`, as h11 (which the server uses too) parses them."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    conn.receive_data(b"")
    methods = []
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                methods.append(event.method)
            elif event in (h11.NEED_DATA, h11.PAUSED) or isinstance(event, h11.ConnectionClosed):
                return methods
            elif isinstance(event, h11.EndOfMessage):
                # Pretend to answer, so the next pipelined request is parsed.
                conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
                conn.send(h11.EndOfMessage())
                conn.start_next_cycle()
    except (h11.RemoteProtocolError, h11.LocalProtocolError):
        return methods


def parse_responses(data: bytes, methods: list[bytes]) -> list[int]:
    """The statuses of the complete responses in `data`; AssertionError if `data` is not well-formed HTTP/1.1.

    `methods` are those of the requests answered, in order (a HEAD response has no body). A
    trailing incomplete response is allowed only as a body cut short by a close.
    """
    assert data == b"" or data.startswith(b"HTTP/1.1 "), data[:200]
    client = h11.Connection(h11.CLIENT)
    if data:
        client.receive_data(data)  # (b"" would mean "closed")
    statuses: list[int] = []
    methods = list(methods) or [b"GET"]
    while True:
        method = methods.pop(0) if methods else b"GET"
        if client.our_state is h11.IDLE:
            client.send(h11.Request(method=method, target="/", headers=[("Host", "x"), ("Content-Length", "0")]))
            client.send(h11.EndOfMessage())
        while True:
            try:
                event = client.next_event()
            except h11.RemoteProtocolError as exc:
                raise AssertionError(f"not well-formed HTTP: {exc}: {data[:400]!r}") from None
            if event is h11.NEED_DATA:
                return statuses
            if isinstance(event, h11.Response):
                statuses.append(event.status_code)
                assert 100 <= event.status_code <= 999
            elif isinstance(event, h11.EndOfMessage):
                break
        if client.our_state is h11.MUST_CLOSE or client.their_state is h11.MUST_CLOSE:
            client.receive_data(b"")
            rest = client.next_event()
            assert isinstance(rest, h11.ConnectionClosed), f"bytes after a closing response: {data[:400]!r}"
            return statuses
        client.start_next_cycle()
