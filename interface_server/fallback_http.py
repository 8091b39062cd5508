"""The HTTP side of the fallback transports: requests under `--fallback-prefix`, served without the application.

`http_protocol.HTTPProtocol` hands a request whose target is under the
prefix to `FallbackHub.request` instead of making an `ActiveRequest`; the
returned object has the same three calls (`body_data`, `body_end`,
`client_gone`) and answers through the protocol (`send`, `request_done`),
so h11, keep-alive, the trickle timeouts and `--max-output-buffer` apply as
to any request. The URLs and bodies are in `fallback_wire`; the socket
itself (channel messages, ordering, timeouts) is
`fallback_session.FallbackSession`.

Security: `--allowed-origins` is checked on every request, as on a
WebSocket handshake, before anything reaches the layer. A same-origin
`EventSource` or `fetch` GET carries no `Origin`; when the browser marks it
`Sec-Fetch-Site: same-origin` (a header pages cannot set), the server adds
the page's origin to `websocket.connect`'s headers, so Origin checks in
consumers (`channels_core.security.websockets`) see what they would see on
a WebSocket. Session ids are 192 random bits, bound to the Origin the
socket was opened with: a request carrying another Origin is refused (403).
No CORS headers are sent: only pages of the server's own origin can read
the responses.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor

from . import origins, output_limit
from .counters import count
from .fallback_session import CONNECTING, FallbackSession
from .fallback_wire import (
    OPEN,
    POLL,
    RECEIVE,
    SEND,
    SSE,
    SSE_PING,
    BadFallbackRequest,
    Route,
    encode_json,
    parse_close,
    parse_post,
    post_limit,
    route,
    sse_event,
    with_since,
)
from .h11_impl import h11
from .wire_messages import BadRequest, RequestInfo, reason_phrase

if TYPE_CHECKING:
    from .http_protocol import HTTPProtocol
    from .server import Server

logger = logging.getLogger("interface_server.fallback")

CLOSE_BODY_LIMIT = 4096
NO_STORE = (b"cache-control", b"no-store")


class FallbackHub:
    """The server's fallback sessions by id, and the door to them for `HTTPProtocol`."""

    def __init__(self, server: Server) -> None:
        self.server = server
        config = server.config
        self.prefix = config.fallback_prefix.encode("ascii")
        self.transports = frozenset(config.fallback_transports)
        self.sessions: dict[str, FallbackSession] = {}
        logger.info("Fallback transports %s under %s", ", ".join(config.fallback_transports), config.fallback_prefix)

    def claims(self, target: bytes) -> bool:
        """Whether this request is the fallback's (its target is under the prefix)."""
        return target.startswith(self.prefix)

    def request(self, protocol: HTTPProtocol, method: bytes, target: bytes, info: RequestInfo, length: int | None):
        """The object that serves one request under the prefix (see the module docstring)."""
        return FallbackRequest(self, protocol, method, target, info, length)

    def add(self, session: FallbackSession) -> None:
        self.sessions[session.session_id] = session

    def forget(self, session: FallbackSession) -> None:
        if self.sessions.get(session.session_id) is session:
            del self.sessions[session.session_id]

    def session_for(self, found: Route, headers: list[list[bytes]]) -> FallbackSession:
        """The open session a `receive`/`send`/`close` names, if the request may use it; else BadFallbackRequest."""
        session = self.sessions.get(found.session)
        if session is None or session.state == CONNECTING:
            raise BadFallbackRequest(404, "No such session (it ended, or never was).")
        origin = _origin(headers)
        if origin is not None and session.origin is not None and origin != session.origin:
            raise BadFallbackRequest(403, "This session belongs to another origin.")
        if found.action == RECEIVE and session.transport != POLL:
            raise BadFallbackRequest(400, "This session is not read by polling.")
        return session


def _origin(headers: list[list[bytes]]) -> bytes | None:
    values = [value for name, value in headers if name == b"origin"]
    return values[0] if len(values) == 1 else None


def _header(headers: list[list[bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


class FallbackRequest:
    """One HTTP request under the prefix: routed at its end, answered by the session or at once."""

    def __init__(
        self,
        hub: FallbackHub,
        protocol: HTTPProtocol,
        method: bytes,
        target: bytes,
        info: RequestInfo,
        length: int | None,
    ) -> None:
        self.hub = hub
        self.server = hub.server
        self.protocol = protocol
        self.method = method
        self.target = target
        self.info = info
        self.body: list[bytes] = []
        self.size = 0
        self.answered = False
        self.gone = False
        self.route: Route | None = None
        self.session: FallbackSession | None = None
        self.timer: Any = None
        self.streaming = False  # an SSE response has started
        self.written = 0  # bytes of the event stream written (with their chunk framing)
        self.acked = 0  # of those, acknowledged by the client at the last ping
        self.outstanding = False  # some were not acknowledged at the last ping
        self.limit = CLOSE_BODY_LIMIT
        try:
            self.route = route(method, target, hub.prefix)
            if self.route.action == OPEN and self.route.transport not in hub.transports:
                raise BadFallbackRequest(404, f"The {self.route.transport} transport is off on this server.")
            refused = origins.policy_for(self.server.config.allowed_origins).refusal(info.headers)
            if refused is not None:
                logger.info("Fallback request %s from %s refused with 403: %s", info.path, info.client, refused)
                raise BadFallbackRequest(403, "Origin not allowed.")
            if self.route.action == SEND:
                self.limit = post_limit(self.server.config.max_ws_message_size)
                if length is not None and length > self.limit:
                    self._too_big()
            elif self.route.action in (OPEN, RECEIVE) and length:
                raise BadFallbackRequest(400, "This request takes no body.")
        except BadFallbackRequest as exc:
            self.error(exc)

    # -- what HTTPProtocol calls -------------------------------------------------------------

    def body_data(self, data: bytes) -> None:
        if self.answered:
            return
        self.size += len(data)
        if self.size > self.limit:
            self._too_big()
            return
        self.body.append(data)

    def body_end(self) -> None:
        if self.answered or self.route is None:
            return
        try:
            self._serve(self.route, b"".join(self.body))
        except BadFallbackRequest as exc:
            self.error(exc)
        self.body = []

    def client_gone(self) -> None:
        self.gone = True
        self._cancel_timer()
        session = self.session
        if session is None or self.answered:
            return
        self.answered = True
        if session.state == CONNECTING:
            session.opener_gone()
        else:
            session.carrier_lost(self)

    # -- routing -----------------------------------------------------------------------------

    def _serve(self, found: Route, body: bytes) -> None:
        if found.action == OPEN:
            self._open(found)
            return
        session = self.hub.session_for(found, self.info.headers)
        if found.action == RECEIVE:
            self.session = session
            self.timer = reactor.callLater(self.server.config.fallback_poll_timeout, self._poll_timed_out)
            session.poll(self, found.ack)
        elif found.action == SEND:
            try:
                post = parse_post(body, self.server.config.max_ws_message_size)
            except BadFallbackRequest as exc:
                if exc.status == 413:
                    session.too_big()
                raise
            session.receive(post, self)
        else:
            session.client_close(parse_close(body))
            self.answer(204)

    def _open(self, found: Route) -> None:
        info = self.info
        headers = [list(h) for h in info.headers]
        origin = _origin(headers)
        if origin is None and _header(headers, b"sec-fetch-site") == b"same-origin":
            host = _header(headers, b"host")
            if host is not None:  # what the browser would have sent on a WebSocket handshake (see the docstring)
                origin = (b"https://" if info.scheme == "https" else b"http://") + host
                headers.append([b"origin", origin])
        if found.last_event_id is not None and _header(headers, b"last-event-id") is None:
            headers.append([b"last-event-id", found.last_event_id])
        # Group history positions a reconnecting EventSource sends back become the query's since= (fallback_wire).
        target = with_since(found.target, _header(headers, b"last-event-id"))
        try:
            inner = dataclasses.replace(
                info, target=target, headers=headers, scheme="wss" if info.scheme == "https" else "ws"
            )
        except BadRequest as exc:
            raise BadFallbackRequest(400, str(exc)) from None
        session = FallbackSession(self.hub, inner, found.transport, origin)
        self.session = session
        self.hub.add(session)
        session.start(self)

    # -- as the session's opener ---------------------------------------------------------------

    def accepted(self, session: FallbackSession) -> None:
        if self.gone:
            return
        if session.transport == SSE:
            self.streaming = True
            headers = [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                NO_STORE,
                (b"x-accel-buffering", b"no"),  # nginx: pass each event on at once
                (b"server", self.server.server_header),
            ]
            opened = {"session": session.session_id, "transport": SSE, "ping": self.server.config.ping_interval}
            self.protocol.send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
            self._stream(sse_event(name="session", data=opened))
            self._count(200)
            session.attach(self)
        else:
            opened = {
                "session": session.session_id,
                "transport": POLL,
                "events": list(session.outbox),
                "poll_timeout": self.server.config.fallback_poll_timeout,
            }
            self.respond(200, encode_json(opened))

    def rejected(self, status: int, reason: str) -> None:
        if not self.gone:
            self.respond(status, reason.encode() + b"\n", b"text/plain; charset=utf-8", close=True)

    # -- as a carrier (the SSE stream, or a held poll) --------------------------------------------

    def deliver(self, events: list[dict]) -> None:
        if self.gone or (self.answered and not self.streaming):
            return
        if self.streaming:
            if events:
                self._stream(b"".join(sse_event(event) for event in events))
            return
        self._cancel_timer()
        self.respond(200, encode_json({"events": events}))
        if self.session is not None:
            self.session.carrier_done(self)

    def _stream(self, data: bytes) -> None:
        """Write part of the event stream, counting the bytes as they go on the wire (see `ping`)."""
        if self.protocol.conn is not None and self.protocol.conn.their_http_version == b"1.1":
            self.written += len(data) + len(b"%x" % len(data)) + 4  # h11's chunk framing: SIZE CRLF data CRLF
        else:
            self.written += len(data)
        self.protocol.send(h11.Data(data=data))

    def ping(self) -> None:
        """Every `--ping-interval`: a comment line, unless the client acknowledged nothing since the last one.

        A WebSocket client answers pings; an SSE client cannot. Instead the
        kernel says how much of what was written the client has not
        acknowledged (`output_limit.unsent_bytes`): a client that had bytes
        outstanding at the last ping and has acknowledged none of them since
        (its laptop closed, its network gone) is dropped, so its consumer
        hears the disconnect within two ping intervals, not when TCP gives up
        (many minutes).
        """
        if not self.streaming or self.gone:
            return
        unsent = output_limit.unsent_bytes(self.protocol.transport)
        acked = self.written - unsent
        if unsent and self.outstanding and acked <= self.acked:
            logger.info(
                "SSE client %s acknowledged nothing for %ss: dropping it",
                self.info.client,
                self.server.config.ping_interval,
            )
            count(self.server, "fallback_sse_stalled")
            self.protocol.transport.abortConnection()
            return
        self._stream(SSE_PING)
        # Measured after the ping too: an idle client that vanished is found at the next ping, not the one after.
        unsent = output_limit.unsent_bytes(self.protocol.transport)
        self.outstanding, self.acked = bool(unsent), self.written - unsent

    def end(self) -> None:
        if self.gone:
            return
        if self.streaming:
            self.streaming = False
            self.answered = True
            self.protocol.send(h11.EndOfMessage())
            self.protocol.request_done()
        elif not self.answered:
            self.deliver([])

    def _poll_timed_out(self) -> None:
        self.timer = None
        self.deliver([])

    def _cancel_timer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    # -- as a send POST waiting for its frames -------------------------------------------------------

    def answer(self, status: int, text: str = "") -> None:
        if status == 204:
            self.respond(204)
        else:
            self.respond(
                status, (text or reason_phrase(status).decode()).encode() + b"\n", b"text/plain; charset=utf-8"
            )

    # -- responses ------------------------------------------------------------------------------------

    def _too_big(self) -> None:
        session = self.hub.sessions.get(self.route.session) if self.route is not None else None
        if session is not None and session.state != CONNECTING:
            session.too_big()
        self.error(BadFallbackRequest(413, "Request body too large."), close=True)

    def error(self, exc: BadFallbackRequest, close: bool = False) -> None:
        extra = [(b"allow", exc.allow)] if exc.allow else []
        body = f"{exc.status} {exc}\n".encode()
        self.respond(exc.status, body, b"text/plain; charset=utf-8", extra, close=close or exc.status == 413)

    def respond(
        self,
        status: int,
        body: bytes = b"",
        content_type: bytes = b"application/json",
        extra: list[tuple[bytes, bytes]] | None = None,
        close: bool = False,
    ) -> None:
        """A whole response (unless the client is gone or one was sent), then the next request's turn."""
        if self.answered or self.gone:
            return
        self.answered = True
        protocol = self.protocol
        if protocol.conn is None or protocol.conn.our_state is not h11.SEND_RESPONSE:
            return
        headers = [NO_STORE, (b"server", self.server.server_header), *(extra or [])]
        if status != 204:
            headers += [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
        if close:
            headers.append((b"connection", b"close"))
        events: list[Any] = [h11.Response(status_code=status, headers=headers, reason=reason_phrase(status))]
        if body and status != 204 and self.method != b"HEAD":
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        protocol.send(*events)
        self._count(status)
        protocol.request_done()

    def _count(self, status: int) -> None:
        stats = self.server.stats
        if stats is not None:
            stats.http_responses[status] = stats.http_responses.get(status, 0) + 1
