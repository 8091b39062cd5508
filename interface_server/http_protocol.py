"""HTTP/1.1 on h11: requests become `http.request` messages, replies become responses.

h11 does the parsing and framing (keep-alive, pipelining answered in order,
chunked bodies, malformed input), `request_framing` refuses what h11 lets
through but a proxy in front could read differently, and `wire_messages`
holds the rules (request head -> message, reply message -> status line,
headers and body); this module only moves events between the socket, h11
and the channel layer, with the timers and flow control that needs. A
WebSocket upgrade hands the socket to `ws_protocol.WebSocketProtocol`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Factory, Protocol

from . import socket_write
from .compat import declared_chunk_size
from .h11_impl import h11
from .request_framing import MAX_CHUNK_SIZE, FramingError, check_request_framing
from .wire_messages import (
    MAX_HEAD_BYTES,
    BadReply,
    BadRequest,
    RequestInfo,
    build_request_info,
    error_response,
    http_disconnect_message,
    http_request_message,
    oversized_head,
    parse_response,
    raw_error_response,
    reason_phrase,
    response_output,
)
from .ws_protocol import make_websocket_factory

if TYPE_CHECKING:
    from .server import Server

logger = logging.getLogger("interface_server.http")

_RETRY_DELAY = 0.05


def _address(address: Any) -> tuple[str, int] | None:
    host = getattr(address, "host", None)
    return (host, address.port) if host is not None else None


class HTTPFactory(Factory):
    noisy = False

    def __init__(self, server: Server) -> None:
        self.server = server
        self.websocket_factory = make_websocket_factory(server)

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
        self.closing = False

    # -- connection ------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.server.connections.add(self)
        self.client = _address(self.transport.getPeer())
        self.local = _address(self.transport.getHost())
        self.secure = ISSLTransport.providedBy(self.transport)
        socket_write.no_delay(self.transport)

    def dataReceived(self, data: bytes) -> None:
        if self.websocket is not None:
            self.websocket.dataReceived(data)
            return
        if self.conn is None:
            return
        self.conn.receive_data(data)
        self.process()

    def connectionLost(self, reason: Any = None) -> None:
        self.server.connections.discard(self)
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
                self.on_request(event)
            elif isinstance(event, h11.Data):
                if event.chunk_start and (declared_chunk_size(self.conn, event.data) or 0) > MAX_CHUNK_SIZE:
                    self.fail_raw(400, "a chunk size over 64 bits")
                    return
                if self.request is not None:
                    self.request.body_data(event.data)
            elif isinstance(event, h11.EndOfMessage):
                if self.request is not None:
                    self.request.body_end()
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.loseConnection()
                return

    def on_request(self, event: h11.Request) -> None:
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
        if conn is None:
            return
        if len(events) == 1:
            data = conn.send(events[0])
        else:
            data = b"".join(conn.send(event) or b"" for event in events)
        if data:
            socket_write.write(self.transport, data)

    def respond_error(self, status: int, text: str, close: bool = False) -> None:
        """A plain-text error response, if no response has started."""
        if self.conn is None or self.conn.our_state is not h11.SEND_RESPONSE:
            self.transport.loseConnection()
            return
        headers, body = error_response(status, text, close)
        self.send(
            h11.Response(status_code=status, headers=headers, reason=reason_phrase(status)),
            h11.Data(data=body),
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
        if self.request is not None:
            self.request.client_gone()
            self.request = None
        if self.conn is not None and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.write_raw_error(status)
        else:
            self.conn = None
            self.transport.loseConnection()

    def write_raw_error(self, status: int) -> None:
        """Write a plain error response and close, bypassing h11 (whose state machine may be in error)."""
        self.transport.write(raw_error_response(status))
        self.conn = None
        self.transport.loseConnection()

    def request_done(self) -> None:
        """The response is complete: close, or go on with the next (maybe pipelined) request."""
        self.request = None
        conn = self.conn
        if conn is None:
            return
        if self.closing or conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
            self.conn = None
            self.transport.loseConnection()
            return
        conn.start_next_cycle()
        # Let the reactor breathe between pipelined requests.
        reactor.callLater(0, self.process)


class ActiveRequest:
    """One request in flight: its body going out, its response coming back."""

    def __init__(self, protocol: HTTPProtocol, info: RequestInfo, length: int | None) -> None:
        self.protocol = protocol
        self.server = protocol.server
        self.config = protocol.server.config
        self.info = info
        self.started_at = time.monotonic()
        self.reply_channel = self.server.new_reply_channel(self)
        self.body: list[bytes] = []
        self.body_size = 0
        self.buffered = 0  # bytes in self.body
        self.body_channel: str | None = None
        self.chunks: deque[dict] = deque()
        self.retry_call: Any = None
        self.blocked_since: float | None = None  # when the body channel became full
        self.timeout_call: Any = None
        self.sent = False
        self.body_forwarded = False  # the last body chunk (more_content False) is on the body channel
        self.finished = False
        self.response_started = False
        self.status: int | None = None
        self.response_size = 0
        # A large body streams through a channel as it arrives. A chunked one (length None)
        # is held like a small one until it outgrows the threshold, so a chunked body that
        # turns out malformed or never ends reaches the application only if it is large.
        if length is not None and length > self.config.body_stream_threshold:
            self.start_streaming()

    def start_streaming(self) -> None:
        self.body_channel = self.server.channel_layer.new_channel("http.request.body?")
        self.send_request(b"")

    # -- the request and its body -------------------------------------------------------

    def send_request(self, body: bytes) -> None:
        message = http_request_message(self.info, self.reply_channel, body, self.body_channel)
        self.sent = True
        self.server.send_soon("http.request", message, self.request_not_sent)
        if self.body_channel is None:
            self.start_timeout()

    def request_not_sent(self, exc: Exception) -> None:
        if isinstance(exc, self.server.ChannelFull):
            logger.warning("http.request is full: answering %s %s with 503", self.info.method, self.info.path)
            self.fail(503, "Request queue full.")
        else:
            logger.error("Cannot send http.request (%s: %s): answering 503", type(exc).__name__, exc)
            self.fail(503, "The channel layer is unavailable.")

    def start_timeout(self) -> None:
        """Wait `http_timeout` for the first response message, counted from when the request is complete.

        A streamed body can take longer than that to upload while the application
        reads it, so its wait starts with the last body chunk.
        """
        if not self.finished and not self.response_started and self.timeout_call is None:
            self.timeout_call = reactor.callLater(self.config.http_timeout, self.timed_out)

    def body_data(self, data: bytes) -> None:
        if self.finished:
            return
        self.body_size += len(data)
        if self.body_size > self.config.max_request_body_size:
            self.fail(413, "Request body too large.")
            return
        self.body.append(data)
        self.buffered += len(data)
        if not self.sent and self.buffered > self.config.body_stream_threshold:
            self.start_streaming()
        if self.body_channel is not None and self.buffered >= self.config.body_chunk_size:
            self.queue_chunk(more=True)

    def body_end(self) -> None:
        if self.finished:
            return
        if self.body_channel is not None:
            self.queue_chunk(more=False)
            self.start_timeout()
        elif not self.sent:
            self.send_request(b"".join(self.body))
            self.body = []
            self.buffered = 0

    def queue_chunk(self, more: bool) -> None:
        data = b"".join(self.body)
        self.body = []
        self.buffered = 0
        size = self.config.body_chunk_size
        pieces = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            self.chunks.append({"content": piece, "more_content": more or not last})
        self.flush_chunks()

    def flush_chunks(self) -> None:
        """Send queued body chunks in order; on ChannelFull, stop reading the socket and retry."""
        self.retry_call = None
        while self.chunks and not self.finished:
            try:
                self.server.send(self.body_channel, self.chunks[0])
            except self.server.ChannelFull:
                if self.blocked_since is None:
                    self.blocked_since = time.monotonic()
                if time.monotonic() - self.blocked_since > self.config.http_timeout:
                    self.fail(503, "The application did not read the request body in time.")
                    return
                self.protocol.transport.pauseProducing()
                self.retry_call = reactor.callLater(_RETRY_DELAY, self.flush_chunks)
                return
            except Exception as exc:
                logger.error("Cannot send a body chunk (%s: %s)", type(exc).__name__, exc)
                self.fail(503, "The channel layer is unavailable.")
                return
            self.blocked_since = None
            if not self.chunks.popleft()["more_content"]:
                self.body_forwarded = True
        if not self.finished:
            self.protocol.transport.resumeProducing()

    # -- the response ------------------------------------------------------------------

    def handle_reply(self, message: dict) -> None:
        if self.finished:
            return
        first = not self.response_started
        try:
            part = parse_response(message, self.response_started)
        except BadReply as exc:
            logger.error("Bad response on %s for %s %s: %s", self.reply_channel, self.info.method, self.info.path, exc)
            if self.response_started:
                self.finish()
                self.protocol.transport.abortConnection()
            else:
                self.fail(500, "The application sent an invalid response.")
            return
        protocol = self.protocol
        output = response_output(part, self.info.method, self.server.server_header)
        events: list[Any] = []
        try:
            if output.status is not None:
                self.response_started = True
                self.status = output.status
                self.cancel_timeout()
                events.append(h11.Response(status_code=output.status, headers=output.headers, reason=output.reason))
            if output.body:
                self.response_size += len(output.body)
                events.append(h11.Data(data=output.body))
            if output.end:
                events.append(h11.EndOfMessage())
            protocol.send(*events)
            if output.end:
                self.finish()
                protocol.request_done()
        except h11.LocalProtocolError as exc:
            self.refused_by_h11(exc, first)

    def refused_by_h11(self, exc: Exception, first: bool) -> None:
        """h11 would not frame this reply (a wrong Content-Length, say): 500, or close if the response had started.

        `protocol.send` frames every event of a message before writing any, so a
        first message that fails has written nothing.
        """
        where = f"on {self.reply_channel} for {self.info.method} {self.info.path}"
        if first:
            logger.error("Invalid response %s: %s; answered 500", where, exc)
            self.status = 500
            self.finish()
            self.abandon_body()
            self.protocol.write_raw_error(500)
        else:
            logger.error("Invalid response %s: %s; the response had started: closing the connection", where, exc)
            self.finish()
            self.protocol.conn = None
            self.protocol.transport.loseConnection()

    def timed_out(self) -> None:
        self.timeout_call = None
        if not self.response_started and not self.finished:
            logger.warning(
                "No response to %s %s within %ss: answering 503",
                self.info.method,
                self.info.path,
                self.config.http_timeout,
            )
            self.fail(503, "Worker server failed to respond within time limit.")

    def fail(self, status: int, text: str) -> None:
        """Answer with an error, if nothing was sent yet; otherwise drop the connection."""
        if self.finished:
            return
        started = self.response_started
        self.status = status
        self.finish()
        self.abandon_body()
        if started:
            self.protocol.transport.abortConnection()
        else:
            self.protocol.respond_error(status, text, close=True)

    def _end(self) -> bool:
        """Stop timers and forget the reply channel; False if the request had already ended."""
        if self.finished:
            return False
        self.finished = True
        self.cancel_timeout()
        if self.retry_call is not None and self.retry_call.active():
            self.retry_call.cancel()
        self.server.forget_reply_channel(self.reply_channel)
        return True

    def finish(self) -> None:
        if not self._end():
            return
        self.server.log_action(
            "http",
            "complete",
            {
                "path": self.info.path,
                "status": self.status,
                "method": self.info.method,
                "client": f"{self.info.client[0]}:{self.info.client[1]}" if self.info.client else None,
                "time_taken": time.monotonic() - self.started_at,
                "size": self.response_size,
                "http_version": self.info.http_version,
                "query_string": self.info.query_string,
            },
        )

    def cancel_timeout(self) -> None:
        if self.timeout_call is not None and self.timeout_call.active():
            self.timeout_call.cancel()
        self.timeout_call = None

    def client_gone(self) -> None:
        """The client closed the connection before the response was complete."""
        if self._end() and self.sent:
            self.abandon_body()
            self.server.send_best_effort("http.disconnect", http_disconnect_message(self.reply_channel, self.info.path))

    def abandon_body(self) -> None:
        """The application may be reading the body channel: tell it no more is coming."""
        if self.sent and self.body_channel is not None and not self.body_forwarded:
            self.body_forwarded = True
            self.server.send_best_effort(self.body_channel, {"closed": True})


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
