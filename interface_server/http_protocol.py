"""HTTP/1.1 on h11: requests become `http.request` messages, replies become responses.

h11 does the parsing and framing (keep-alive, pipelining answered in order,
chunked bodies, malformed input), `request_framing` refuses what h11 lets
through but a proxy in front could read differently, and `wire_messages`
holds the rules (request head -> message, reply message -> status line,
headers and body); this module is the connection: it moves events between
the socket and h11 and answers errors, while `http_request.ActiveRequest`
is one request's life (its body to the channel layer with flow control, its
reply, its timeout). A WebSocket upgrade hands the socket to
`ws_protocol.WebSocketProtocol`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Factory, Protocol

from . import compat, output_limit, socket_write, trickle
from .compat import declared_chunk_size
from .counters import count
from .h11_impl import h11
from .http_request import ActiveRequest
from .request_framing import MAX_CHUNK_SIZE, FramingError, check_request_framing
from .wire_messages import (
    MAX_HEAD_BYTES,
    BadRequest,
    RequestInfo,
    build_request_info,
    error_response,
    oversized_head,
    raw_error_response,
    reason_phrase,
)
from .ws_protocol import make_websocket_factory

if TYPE_CHECKING:
    from .server import Server

logger = logging.getLogger("interface_server.http")


def _address(address: Any) -> tuple[str, int] | None:
    host = getattr(address, "host", None)
    return (host, address.port) if host is not None else None


class HTTPFactory(Factory):
    noisy = False

    def __init__(self, server: Server) -> None:
        self.server = server
        self.websocket_factory = make_websocket_factory(server)
        self.fallback = None  # SSE and long-polling under --fallback-prefix (fallback_http.py), when on
        if server.config.fallback_transports:
            from .fallback_http import FallbackHub

            self.fallback = FallbackHub(server)

    def buildProtocol(self, addr: Any) -> HTTPProtocol:
        protocol = HTTPProtocol(self.server, self.websocket_factory)
        protocol.factory = self
        return protocol


class HTTPProtocol(Protocol):
    """One client connection speaking HTTP/1.1 (until it upgrades to WebSocket)."""

    def __init__(self, server: Server, websocket_factory: Any) -> None:
        self.server = server
        self.websocket_factory = websocket_factory
        self.conn: h11.Connection | None = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.request: ActiveRequest | None = None
        self.websocket: Any = None
        self.upgrade: tuple[h11.Request, RequestInfo] | None = None
        self.method = b""
        self.closing = False
        self.output_cut = False  # past --max-output-buffer: aborted, nothing more is written
        self.timeouts: trickle.ConnectionTimeouts | None = None

    # -- connection ------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.server.connections.add(self)
        if self.server.stats is not None:
            self.server.stats.accepted += 1
        self.client = _address(self.transport.getPeer())
        self.local = _address(self.transport.getHost())
        self.secure = ISSLTransport.providedBy(self.transport)
        socket_write.no_delay(self.transport)
        self.timeouts = trickle.ConnectionTimeouts(
            self.server.config,
            reactor,
            self.trickle_timeout,
            lambda: compat.is_reading(self.transport),
            self.queued_output,
        )

    def queued_output(self) -> tuple[int, int]:
        """(bytes this process holds for the client, those plus the kernel's unsent send queue)."""
        held = compat.write_buffer_size(self.transport)
        return held, held + (output_limit.unsent_bytes(self.transport) if held else 0)

    def dataReceived(self, data: bytes) -> None:
        stats = self.server.stats
        if stats is not None:  # every byte of the socket passes here, a WebSocket's too (metrics.py)
            if self.websocket is not None:
                stats.bytes_in_websocket += len(data)
            else:
                stats.bytes_in_http += len(data)
        if self.websocket is not None:
            self.websocket.dataReceived(data)
            return
        if self.conn is None:
            return
        if self.timeouts is not None:
            self.timeouts.data()
        self.conn.receive_data(data)
        self.process()

    def connectionLost(self, reason: Any = None) -> None:
        self.server.connections.discard(self)
        if self.timeouts is not None:
            self.timeouts.stop()
        if self.websocket is not None:
            self.websocket.connectionLost(reason)
            return
        if self.request is not None:
            self.request.client_gone()
            self.request = None
        self.conn = None

    def begin_shutdown(self) -> None:
        """Close when idle; a request in flight gets the grace period to finish."""
        self.closing = True
        if self.request is None:
            self.transport.loseConnection()

    def abort(self) -> None:
        self.transport.abortConnection()

    # -- requests --------------------------------------------------------------------

    def process(self) -> None:
        """Handle every complete event h11 has; pipelined requests wait their turn."""
        while self.conn is not None and self.websocket is None:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                self.fail_raw(exc.error_status_hint, str(exc))
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                if self.upgrade is not None:
                    self.start_websocket()
                return
            if isinstance(event, h11.Request):
                if self.timeouts is not None:
                    self.timeouts.request_head()
                self.on_request(event)
            elif isinstance(event, h11.Data):
                if event.chunk_start and (declared_chunk_size(self.conn, event.data) or 0) > MAX_CHUNK_SIZE:
                    self.fail_raw(400, "a chunk size over 64 bits")
                    return
                if self.timeouts is not None:
                    self.timeouts.body_bytes(len(event.data))
                if self.request is not None:
                    self.request.body_data(event.data)
            elif isinstance(event, h11.EndOfMessage):
                if self.timeouts is not None:
                    self.timeouts.request_complete()
                if self.request is not None:
                    self.request.body_end()
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.loseConnection()
                return

    def on_request(self, event: h11.Request) -> None:
        self.method = event.method  # an error response to HEAD has no body (h11 refuses one: found by fuzzing)
        too_large = oversized_head(event.target, event.headers.raw_items())
        if too_large is not None:
            self.respond_error(*too_large, close=True)
            return
        try:
            check_request_framing(event.http_version, event.headers)
        except FramingError as exc:
            # Refused before anything reaches the application; closing discards whatever
            # the client meant as the body (or as a smuggled second request).
            logger.info("Bad request from %s: %s", self.client, exc)
            self.respond_error(exc.status, f"{exc}.", close=True)
            return
        try:
            info = build_request_info(
                event.method,
                event.http_version,
                event.target,
                event.headers.raw_items(),
                self.client,
                self.local,
                "https" if self.secure else "http",
                self.server.config.root_path,
                self.server.config.proxy_headers,
            )
        except BadRequest as exc:
            self.respond_error(400, str(exc), close=True)
            return
        if self.closing or self.server.shutting_down:
            self.respond_error(503, "The server is shutting down.", close=True)
            return
        fallback = getattr(getattr(self, "factory", None), "fallback", None)
        if fallback is not None and fallback.claims(event.target):  # a socket over SSE or long-polling
            request = fallback.request(self, event.method, event.target, info, length=_content_length(event))
            if not request.answered:  # refused at once: request_done has run
                self.request = request
                if self.conn is not None and self.conn.client_is_waiting_for_100_continue:
                    self.send(h11.InformationalResponse(status_code=100, headers=[]))
            return
        if _is_websocket_upgrade(event):
            info.scheme = "wss" if info.scheme == "https" else "ws"
            self.upgrade = (event, info)
            return
        length = _content_length(event)
        if length is not None and length > self.server.config.max_request_body_size:
            self.respond_error(413, "Request body too large.", close=True)
            return
        self.request = ActiveRequest(self, info, length)
        if self.conn is not None and self.conn.client_is_waiting_for_100_continue:
            self.send(h11.InformationalResponse(status_code=100, headers=[]))

    def start_websocket(self) -> None:
        """Hand the socket to a WebSocket protocol, replaying the handshake request to it."""
        event, info = self.upgrade
        trailing = self.conn.trailing_data[0] if self.conn is not None else b""
        self.upgrade = None
        self.conn = None
        self.server.connections.discard(self)
        if self.timeouts is not None:  # from here on the WebSocket's own timers (handshake, pings) apply
            self.timeouts.stop()
            self.timeouts = None
        raw = b"%s %s HTTP/1.1\r\n" % (event.method, event.target)
        raw += b"".join(b"%s: %s\r\n" % (name, value) for name, value in event.headers.raw_items())
        websocket = self.websocket_factory.buildProtocol(self.transport.getPeer())
        websocket.setup(self.server, info)
        self.websocket = websocket
        websocket.makeConnection(self.transport)
        websocket.dataReceived(raw + b"\r\n" + trailing)

    # -- responses -------------------------------------------------------------------

    def send(self, *events: Any) -> None:
        """Frame `events` with h11 and write them to the socket in one write."""
        conn = self.conn
        if conn is None or self.output_cut:
            return
        if not output_limit.http_may_write(self):
            self.output_cut = True
            return
        if len(events) == 1:
            data = conn.send(events[0])
        else:
            data = b"".join(conn.send(event) or b"" for event in events)
        if data:
            socket_write.write(self.transport, data)
            if self.server.stats is not None:
                self.server.stats.bytes_out_http += len(data)

    def respond_error(self, status: int, text: str, close: bool = False) -> None:
        """A plain-text error response, if no response has started."""
        if self.conn is None or self.conn.our_state is not h11.SEND_RESPONSE:
            self.transport.loseConnection()
            return
        headers, body = error_response(status, text, close)
        _count_response(self.server, status)
        self.send(
            h11.Response(status_code=status, headers=headers, reason=reason_phrase(status)),
            h11.Data(data=b"" if self.method == b"HEAD" else body),
            h11.EndOfMessage(),
        )
        self.request_done()

    def fail_raw(self, status: int, why: str) -> None:
        """Refuse input h11 rejected, or a body found malformed: answer `status` and close.

        A request already dispatched learns it the way it learns of a client that left:
        `{"closed": True}` on its body channel and `http.disconnect`. When the
        application's response has started, the connection is only closed.
        """
        logger.info("Bad request from %s: %s", self.client, why)
        self.give_up(status)

    def give_up(self, status: int) -> None:
        """End the connection with `status` if no response has started (else just close).

        A request already dispatched hears `http.disconnect` (and `{"closed": True}`
        on its body channel).
        """
        if self.request is not None:
            self.request.client_gone()
            self.request = None
        if self.conn is not None and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.write_raw_error(status)
        else:
            self.close_connection()

    def write_raw_error(self, status: int) -> None:
        """Write a plain error response and close, bypassing h11 (whose state machine may be in error)."""
        if not self.output_cut:
            response = raw_error_response(status)
            if self.method == b"HEAD":  # the head alone: a body would be read as garbage (found by fuzzing)
                response = response[: response.index(b"\r\n\r\n") + 4]
            self.transport.write(response)
            _count_response(self.server, status, len(response))
        self.close_connection()

    def close_connection(self) -> None:
        """Close once what is queued is written; a client that takes none of it for the keep-alive timeout is cut."""
        self.conn = None
        self.transport.loseConnection()
        if self.timeouts is not None:
            self.timeouts.closing()

    def trickle_timeout(self, phase: str, why: str) -> None:
        """A trickle deadline passed (see `trickle`): 408 for a request that is too slow, a plain close when idle."""
        count(self.server, f"{phase}_timeout")
        if phase == trickle.KEEPALIVE:
            logger.debug("Closing the connection from %s: %s", self.client, why)
            self.conn = None
            if compat.write_buffer_size(self.transport):
                self.transport.abortConnection()  # it does not read either: do not wait for it to
            else:
                self.transport.loseConnection()
        elif phase == trickle.CLOSING:
            logger.info("Aborting the connection from %s: %s", self.client, why)
            self.transport.abortConnection()
        else:
            logger.info("Request timeout from %s: %s; answering 408", self.client, why)
            self.give_up(408)

    def request_done(self) -> None:
        """The response is complete: close, or go on with the next (maybe pipelined) request."""
        self.request = None
        conn = self.conn
        if conn is None:
            return
        if self.closing or conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
            self.close_connection()
            return
        conn.start_next_cycle()
        if self.timeouts is not None:
            self.timeouts.waiting(next_request_started=bool(conn.trailing_data[0]))
        # Let the reactor breathe between pipelined requests.
        reactor.callLater(0, self.process)


def _count_response(server: Server, status: int, size: int = 0) -> None:
    """Count a response the server wrote itself (and the bytes it wrote past h11), for /metrics."""
    stats = server.stats
    if stats is not None:
        stats.http_responses[status] = stats.http_responses.get(status, 0) + 1
        stats.bytes_out_http += size


def _is_websocket_upgrade(event: h11.Request) -> bool:
    if event.method != b"GET":
        return False
    for name, value in event.headers:
        if name == b"upgrade" and value.lower() == b"websocket":
            return True
    return False


def _content_length(event: h11.Request) -> int | None:
    for name, value in event.headers:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            return int(value)
    return 0
