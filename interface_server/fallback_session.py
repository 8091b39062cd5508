"""One socket over Server-Sent Events or long-polling: the WebSocket's channel messages without a WebSocket.

A `FallbackSession` is to `fallback_http` what `ws_protocol.WebSocketProtocol`
is to Autobahn: it sends `websocket.connect`, `websocket.receive` and
`websocket.disconnect` exactly as a WebSocket would (same keys, same
`order`, one disconnect per connection, sent through the server's lease so
a sweeper sends it if this process dies), and turns reply messages
(`accept`, `text`, `bytes`, `close`, by `wire_messages.websocket_actions`)
into events for the client. What differs is only how bytes move:

- server to client, events go to a *carrier*: the SSE response (written at
  once) or a held long-poll request (answered with what is waiting). A
  long-poll session keeps its events until the next poll acknowledges them
  (`ack`), so a poll lost on the way is answered again: nothing is lost
  between polls.
- client to server, `send` POSTs carry numbered batches of frames (`seq`):
  they reach the layer in `seq` order whatever order the POSTs arrive in,
  a repeated `seq` (a retried POST) is ignored, and a POST is answered only
  once its frames are on the channel (backpressure: a client that waits
  for the answer cannot outrun the layer).

The socket ends, and the application gets `websocket.disconnect`, when the
client closes it (`close` POST: its code), the application closes it (its
code), the SSE response's connection is lost (1006), a long-poll client
does not poll for `--fallback-session-timeout` (1006), the events waiting
for a client exceed `--max-output-buffer` (1008), or the server shuts down
(1001).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet import reactor
from twisted.internet.task import LoopingCall

from . import output_limit
from .counters import count
from .fallback_wire import (
    MAX_HELD_POSTS,
    POLL,
    SSE,
    Post,
    bytes_event,
    close_event,
    event_size,
    history_id,
    text_event,
)
from .sender import SendTimeout
from .wire_messages import (
    BadReply,
    RequestInfo,
    websocket_actions,
    websocket_connect_message,
    websocket_disconnect_message,
    websocket_receive_message,
)

if TYPE_CHECKING:
    from .server import Server

logger = logging.getLogger("interface_server.fallback")

CLOSE_GOING_AWAY = 1001
CLOSE_ABNORMAL = 1006
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CONNECTING, OPEN, CLOSED = "connecting", "open", "closed"


class Opener(Protocol):
    """The request that opened the session, waiting for the application's answer."""

    def accepted(self, session: FallbackSession) -> None: ...

    def rejected(self, status: int, reason: str) -> None: ...


class Carrier(Protocol):
    """The request that carries events to the client now: the SSE stream, or a held poll."""

    def deliver(self, events: list[dict]) -> None:
        """Send `events` (an SSE stream writes them; a poll answers with them and is done)."""

    def end(self) -> None:
        """End the response (the session is over)."""


class PostReply(Protocol):
    """A `send` POST waiting for its frames to be on the channel."""

    def answer(self, status: int, text: str = "") -> None: ...


class FallbackSession:
    """One socket; registered as its reply channel's handler and among the server's connections."""

    is_fallback_socket = True
    """Marks it for `lease_keeper` (closed with 1012 when the layer lost its state, counted as a socket)."""

    def __init__(self, hub: Any, info: RequestInfo, transport: str, origin: bytes | None) -> None:
        self.hub = hub
        self.server: Server = hub.server
        self.info = info
        self.transport = transport
        self.origin = origin
        self.session_id = secrets.token_urlsafe(24)
        self.reply_channel: str | None = None
        self.state = CONNECTING
        self.order = 0
        self.opener: Opener | None = None
        self.carrier: Carrier | None = None
        self.outbox: deque[dict] = deque()
        self.outbox_bytes = 0
        self.positions: dict[str, str] = {}  # group -> "EPOCH:OFFSET" of the last history frame (SSE ids)
        self.next_event_id = 1
        self.next_seq = 1
        self.held_posts: dict[int, tuple[list[tuple[bytes, bool]], PostReply]] = {}
        self.connect_sent = False
        self.disconnect_sent = False
        self.closing_code: int | None = None  # the close event is queued; the session ends once it is delivered
        self.close_delivered = False  # a carrier was given the close event
        self.connect_timer: Any = None
        self.lifetime_timer: Any = None
        self.idle_timer: Any = None
        self.pinger: LoopingCall | None = None
        self.connect_at = 0.0

    def _details(self) -> dict:
        client = "{}:{}".format(*self.info.client) if self.info.client else None
        return {"path": self.info.path, "client": client}

    # -- opening ---------------------------------------------------------------------------------

    def start(self, opener: Opener) -> None:
        """Send `websocket.connect`; `opener` hears `accepted` or `rejected`."""
        self.opener = opener
        server = self.server
        server.connections.add(self)
        if server.stats is not None:
            server.stats.websockets_opened += 1
            self.connect_at = time.monotonic()
        self.reply_channel = server.new_reply_channel(self)
        self.connect_sent = True
        server.track_connection(self.reply_channel, self.info.path)
        server.send_soon(
            "websocket.connect",
            websocket_connect_message(self.info, self.reply_channel),
            self._connect_not_sent,
            owner=self,
            on_sent=self._connect_queued,
            kind="connect",
        )
        server.log_action("websocket", "connecting", self._details())

    def _connect_queued(self) -> None:
        if self.state == CONNECTING and self.connect_timer is None:
            self.connect_timer = reactor.callLater(
                self.server.config.websocket_connect_timeout, self._connect_timed_out
            )

    def _connect_not_sent(self, exc: Exception) -> None:
        if self.state != CONNECTING:
            return
        self.server.count("websocket_connects_refused_503")
        level = logging.DEBUG if isinstance(exc, SendTimeout) else logging.WARNING
        self._reject(f"cannot send websocket.connect ({type(exc).__name__}: {exc})", 503, level)

    def _connect_timed_out(self) -> None:
        self.connect_timer = None
        if self.state == CONNECTING:
            timeout = self.server.config.websocket_connect_timeout
            self._reject(f"not accepted within {timeout}s (no reply to websocket.connect)", 403, logging.WARNING)

    def _reject(self, why: str, status: int = 403, level: int = logging.INFO) -> None:
        logger.log(level, "Fallback socket %s from %s rejected: %s", self.info.path, self._details()["client"], why)
        self.server.log_action("websocket", "rejected", self._details())
        opener, self.opener = self.opener, None
        self._finish(CLOSE_ABNORMAL)
        if opener is not None:
            opener.rejected(status, "Service unavailable." if status == 503 else "Forbidden.")

    def _accept(self) -> None:
        self.state = OPEN
        self._cancel(self.connect_timer)
        self.connect_timer = None
        self.server.log_action("websocket", "connected", self._details())
        timeout = self.server.websocket_timeout
        if timeout and timeout > 0:
            self.lifetime_timer = reactor.callLater(timeout, self._lifetime_over)
        if self.transport == SSE and self.server.config.ping_interval > 0:
            self.pinger = LoopingCall(self._ping)
            self.pinger.clock = reactor
            self.pinger.start(self.server.config.ping_interval, now=False)
        opener, self.opener = self.opener, None
        if opener is not None:
            opener.accepted(self)  # SSE: the stream becomes the carrier; poll: answered with what is queued
        if self.transport == POLL and self.carrier is None:
            self._arm_idle()

    def opener_gone(self) -> None:
        """The client left before the application answered."""
        if self.state == CONNECTING:
            self.opener = None
            self._finish(CLOSE_ABNORMAL)

    # -- replies ---------------------------------------------------------------------------------

    def handle_reply(self, message: dict) -> None:
        if self.state == CLOSED:
            self.server.count("replies_dropped")
            return
        connecting = self.state == CONNECTING
        try:
            actions = websocket_actions(message, connecting)
        except BadReply as exc:
            logger.error("Bad WebSocket reply on %s: %s", self.reply_channel, exc)
            if connecting:
                self._reject("the application sent an invalid reply", 500)
            else:
                self.close(CLOSE_INTERNAL_ERROR)
            return
        stats = self.server.stats
        if stats is not None and connecting and (actions.reject or actions.accept):
            stats.latency_ws_connect.observe(time.monotonic() - self.connect_at)
        if actions.reject:
            self._reject("rejected by the application")
            return
        for payload, binary in actions.send:
            event_id = self.next_event_id
            self.next_event_id += 1
            if binary:
                event = bytes_event(event_id, payload)
            else:
                text = payload.decode("utf-8")
                event = text_event(event_id, text)
                if self.transport == SSE and text.startswith('{"history":'):
                    event["_sse_id"] = history_id(self.positions, text)
            self.outbox.append(event)
            self.outbox_bytes += event_size(event)
        if actions.accept:
            self._accept()  # after queueing: a poll opener answers with the accept's own data
        if actions.close is not None:
            self.close(actions.close)
        elif self.state == OPEN:
            self._flush()

    def close(self, code: int) -> None:
        """The server closes the socket with `code`: a close event for the client, the disconnect now."""
        if self.state != OPEN or self.closing_code is not None:
            return
        self.closing_code = code
        self.outbox.append(close_event(self.next_event_id, code))
        self.next_event_id += 1
        self._send_disconnect(code)
        self._flush()
        if self.carrier is None and self.transport == SSE:
            self._finish(code)

    def _flush(self) -> None:
        """Hand what waits to the carrier; bound what waits for a long-poll client that does not come."""
        if self.carrier is not None and self.outbox:
            events = list(self.outbox)
            if self.transport == SSE:
                self.outbox.clear()
                self.outbox_bytes = 0
            self.close_delivered = self.close_delivered or "close" in events[-1]
            self.carrier.deliver(events)
            if self.close_delivered:
                self._finish(self.closing_code or CLOSE_ABNORMAL)
        elif self.outbox_bytes > self.server.config.max_output_buffer and self.closing_code is None:
            count(self.server, output_limit.COUNTER)
            logger.warning(
                "Fallback socket %s does not poll: %d bytes wait, over --max-output-buffer; closing it with %d",
                self.reply_channel,
                self.outbox_bytes,
                CLOSE_POLICY,
            )
            self.outbox.clear()
            self.outbox_bytes = 0
            self._finish(CLOSE_POLICY)

    def _ping(self) -> None:
        ping = getattr(self.carrier, "ping", None)
        if ping is not None:
            ping()

    def _lifetime_over(self) -> None:
        self.lifetime_timer = None
        logger.info("Fallback socket %s reached its maximum lifetime: closing", self.reply_channel)
        self.close(1000)

    # -- carriers --------------------------------------------------------------------------------

    def attach(self, carrier: Carrier) -> None:
        """An SSE stream (once accepted) carries events from now on."""
        self.carrier = carrier

    def poll(self, request: Carrier, ack: int) -> None:
        """A long-poll with every event up to `ack` received: answer with the rest, or hold it until one comes."""
        while self.outbox and self.outbox[0]["id"] <= ack:
            self.outbox_bytes -= event_size(self.outbox.popleft())
        previous, self.carrier = self.carrier, request
        if previous is not None:
            previous.deliver([])  # one poll at a time: the older one is answered empty
        self._cancel(self.idle_timer)
        self.idle_timer = None
        if self.outbox:
            self._flush()

    def carrier_done(self, carrier: Carrier) -> None:
        """A poll was answered, or timed out empty: the client has `--fallback-session-timeout` to poll again."""
        if self.carrier is carrier:
            self.carrier = None
            if self.state != CLOSED:
                self._arm_idle()

    def carrier_lost(self, carrier: Carrier) -> None:
        """The connection of the carrier broke: for SSE the client is gone; a poll waits for its retry."""
        if self.carrier is not carrier:
            return
        self.carrier = None
        if self.transport == SSE:
            self._finish(self.closing_code or CLOSE_ABNORMAL)
        elif self.state != CLOSED:
            self._arm_idle()

    def _arm_idle(self) -> None:
        self._cancel(self.idle_timer)
        self.idle_timer = reactor.callLater(self.server.config.fallback_session_timeout, self._idle_over)

    def _idle_over(self) -> None:
        self.idle_timer = None
        if self.carrier is None:
            logger.info(
                "Fallback socket %s: no poll for %ss; the client is gone",
                self.reply_channel,
                self.server.config.fallback_session_timeout,
            )
            self._finish(self.closing_code or CLOSE_ABNORMAL)

    # -- frames from the client --------------------------------------------------------------------

    def receive(self, post: Post, reply: PostReply) -> None:
        """A `send` POST: its frames go to `websocket.receive` in `seq` order; `reply` answered once they are sent."""
        if self.state != OPEN or self.closing_code is not None:
            reply.answer(410, "The socket is closed.")
            return
        if post.seq < self.next_seq:
            reply.answer(204)  # a retried POST that was already taken
            return
        if post.seq in self.held_posts or post.seq >= self.next_seq + MAX_HELD_POSTS:
            reply.answer(409, f"seq {post.seq} is too far ahead of {self.next_seq} (or already waiting).")
            return
        self.held_posts[post.seq] = (post.frames, reply)
        while self.next_seq in self.held_posts:
            frames, waiting = self.held_posts.pop(self.next_seq)
            self.next_seq += 1
            self._send_frames(frames, waiting)

    def _send_frames(self, frames: list[tuple[bytes, bool]], reply: PostReply) -> None:
        if not frames:
            reply.answer(204)
            return
        stats = self.server.stats
        for i, (payload, binary) in enumerate(frames):
            self.order += 1
            message = websocket_receive_message(self.reply_channel, self.info.path, self.order, payload, binary)
            last = i == len(frames) - 1
            self.server.send_soon(
                "websocket.receive",
                message,
                lambda exc, reply=reply: self._receive_not_sent(exc, reply),
                owner=self,
                on_sent=(lambda: reply.answer(204)) if last else None,
            )
            if stats is not None:
                stats.bytes_in_websocket += len(payload)

    def pause_reading(self) -> None:
        """Nothing to pause: a `send` POST is read whole (bounded) and answered only once its frames are sent."""

    def resume_reading(self) -> None:
        """See `pause_reading`."""

    def _receive_not_sent(self, exc: Exception, reply: PostReply) -> None:
        reply.answer(503, "The channel layer did not take the frames.")
        if self.state != OPEN:
            return
        if isinstance(exc, SendTimeout):
            self.server.count("websockets_closed_send_timeout")
            code = CLOSE_TRY_AGAIN_LATER
        elif isinstance(exc, getattr(self.server.channel_layer, "MessageTooLarge", SendTimeout)):
            code = CLOSE_TOO_BIG
        else:
            logger.error(
                "Cannot send websocket.receive (%s: %s): closing %s", type(exc).__name__, exc, self.reply_channel
            )
            code = CLOSE_INTERNAL_ERROR
        self.close(code)

    def client_close(self, code: int) -> None:
        """The client closed the socket (`close` POST, or the bridge's `close()`)."""
        if self.state == CLOSED:
            return
        self._finish(code)

    def too_big(self) -> None:
        """A `send` POST over the size limit: the WebSocket would close with 1009 (message too big)."""
        self.close(CLOSE_TOO_BIG)

    # -- the end -------------------------------------------------------------------------------------

    def _send_disconnect(self, code: int) -> None:
        if self.connect_sent and not self.disconnect_sent:
            self.disconnect_sent = True
            message = websocket_disconnect_message(self.reply_channel, self.info.path, self.order + 1, code)
            self.server.send_disconnect(self.reply_channel, "websocket.disconnect", message)

    def _finish(self, code: int) -> None:
        """The socket is over: disconnect (once), timers off, forgotten, its carrier ended."""
        if self.state == CLOSED:
            return
        was_open = self.state == OPEN
        self.state = CLOSED
        self._send_disconnect(code)
        for timer in (self.connect_timer, self.lifetime_timer, self.idle_timer):
            self._cancel(timer)
        self.connect_timer = self.lifetime_timer = self.idle_timer = None
        if self.pinger is not None and self.pinger.running:
            self.pinger.stop()
        self.server.forget_reply_channel(self.reply_channel)
        self.server.connections.discard(self)
        self.hub.forget(self)
        for _, waiting in self.held_posts.values():
            waiting.answer(410, "The socket is closed.")
        self.held_posts.clear()
        carrier, self.carrier = self.carrier, None
        if carrier is not None:
            if not self.close_delivered:  # tell the client why, with whatever still waited for it
                self.close_delivered = True
                carrier.deliver([*self.outbox, close_event(self.next_event_id, code)])
            carrier.end()
        if was_open:
            self.server.log_action("websocket", "disconnected", self._details())

    def close_socket(self, code: int, why: str) -> None:
        """Close from the server's side with `code` (the lease keeper's 1012), whatever the state."""
        if self.state == CONNECTING:
            self._reject(why, 503)
        else:
            self.close(code)

    @staticmethod
    def _cancel(timer: Any) -> None:
        if timer is not None and timer.active():
            timer.cancel()

    # -- server shutdown -------------------------------------------------------------------------------

    def announce_shutdown(self) -> None:
        """Send the application this socket's disconnect (1001), ahead of the client's close event."""
        self._send_disconnect(CLOSE_GOING_AWAY)

    def begin_shutdown(self) -> None:
        self._send_disconnect(CLOSE_GOING_AWAY)
        if self.state == CONNECTING:
            self._reject("the server is shutting down", 503)
        elif self.state == OPEN:
            self.close(CLOSE_GOING_AWAY)
            if self.state != CLOSED and self.carrier is None:
                self._finish(CLOSE_GOING_AWAY)

    def abort(self) -> None:
        self._finish(CLOSE_GOING_AWAY)
