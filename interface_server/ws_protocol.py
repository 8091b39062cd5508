"""WebSocket connections: Autobahn does the framing, this module the channel messages.

The handshake is held open (Autobahn's `onConnect` returns a Deferred)
until the application accepts or rejects on the reply channel, or
`--websocket-connect-timeout` passes.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer, reactor

from . import compat, origins, output_limit, socket_write
from .deflate import SHARED_LARGEST, Compression, frame
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

logger = logging.getLogger("interface_server.websocket")

CLOSE_GOING_AWAY = 1001
CLOSE_ABNORMAL = 1006
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TOO_BIG = 1009
FLOODER_READ_SIZE = 4096
"""Bytes per read for a socket that was paused for sending faster than the layer takes (Twisted reads 64 KiB;
Autobahn parses a whole read at once, so a read of tiny frames holds the reactor for every frame in it)."""


def _set_read_size(transport: Any, size: int) -> None:
    """Twisted's per-connection read size (`FileDescriptor.bufferSize`, public); other transports keep theirs."""
    if getattr(transport, "bufferSize", 0) > size:
        transport.bufferSize = size


def make_websocket_factory(server: Server) -> WebSocketServerFactory:
    config = server.config
    factory = WebSocketServerFactory(server=config.server_name)
    factory.protocol = WebSocketProtocol
    # permessage-deflate: negotiated by Autobahn, sent by `deflate`. Its accept goes in this one call:
    # a second call of setProtocolOptions would put allowNullOrigin back to False.
    factory.compression = None if config.ws_compression is None else Compression(config.ws_compression)
    factory.setProtocolOptions(
        autoPingInterval=config.ping_interval,
        autoPingTimeout=config.ping_timeout,
        # Our own connect timer decides (and logs why); Autobahn's is only a backstop.
        openHandshakeTimeout=config.websocket_connect_timeout + 5,
        maxMessagePayloadSize=config.max_ws_message_size,
        maxFramePayloadSize=config.max_ws_message_size,
        allowNullOrigin=True,
        # Fail a connection (too big a message, protocol error) with a close frame
        # carrying the reason's code (e.g. 1009), not by dropping TCP (seen as 1006).
        failByDrop=False,
        perMessageCompressionAccept=None if factory.compression is None else factory.compression.accept,
    )
    compat.use_exact_timers(factory)
    factory.protocol = configured_protocol(factory)
    return factory


def configured_protocol(factory: WebSocketServerFactory) -> type[WebSocketProtocol]:
    """`WebSocketProtocol` with the factory's options as class attributes (memory per idle socket).

    Autobahn copies each of its options (`CONFIG_ATTRS`, about 30) from the
    factory into every protocol's `__dict__` unless the protocol already has
    it, so set on the class they are shared by every socket. Call it again
    after changing the factory's options. A function (`perMessageCompressionAccept`) is kept as a
    `staticmethod`: set on a class, it would otherwise be called with the protocol as first argument.
    """
    options: dict[str, Any] = {}
    for name in WebSocketServerProtocol.CONFIG_ATTRS:
        if hasattr(factory, name):
            value = getattr(factory, name)
            options[name] = staticmethod(value) if inspect.isfunction(value) else value
    return type("WebSocketProtocol", (WebSocketProtocol,), options)


_HANDSHAKE_ONLY = (
    "http_headers",
    "http_request_data",
    "http_response_data",
    "http_status_line",
    "http_request_uri",
    "http_request_path",
    "http_request_params",
    "http_request_host",
    "websocket_origin",
    "websocket_protocols",
    "websocket_extensions",
)
"""What Autobahn keeps of the opening handshake and reads only during it (checked: Autobahn 26.11.1)."""


class _ListQueue(list):
    """Autobahn's `send_queue` (append, popleft, len) without a deque's 600-byte first block.

    It holds a few chopped or synced writes at most, so `popleft` on a list costs nothing.
    """

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


class PlainFrames:
    """The last plain (uncompressed) frame built, reused while the next message is the same.

    A group send arrives as one element the layer fans out to this server's
    members, delivered one after the other in the same reactor turn: each
    member's copy is framed once for all. Keyed by content (an equal
    payload compares as fast as memcmp), so nothing depends on who built
    the bytes; one entry, and none for messages over `largest` bytes.
    """

    def __init__(self, largest: int = SHARED_LARGEST) -> None:
        self.largest = largest
        self._payload = b""
        self._binary = False
        self._frame = frame(b"", False)

    def frame(self, payload: bytes, binary: bool) -> bytes:
        """The unmasked, unfragmented server frame carrying `payload`."""
        if binary is self._binary and (payload is self._payload or payload == self._payload):
            return self._frame
        data = frame(payload, binary)
        if len(payload) <= self.largest:
            self._payload, self._binary, self._frame = payload, binary, data
        return data


_plain_frames = PlainFrames()


class WebSocketProtocol(WebSocketServerProtocol):
    """One WebSocket client: `websocket.connect/receive/disconnect` out, replies in."""

    # Read as None once `_shed_handshake` dropped them from the instance.
    http_headers = http_request_data = http_response_data = http_status_line = None
    http_request_uri = http_request_path = http_request_params = http_request_host = None
    websocket_origin = websocket_protocols = websocket_extensions = None

    def setup(self, server: Server, info: RequestInfo) -> None:
        self.server = server
        self.info = info
        self.reply_channel: str | None = None
        self.order = 0
        self.handshake: defer.Deferred | None = None
        self.subprotocol: str | None = None
        self.connect_timer: Any = None
        self.lifetime_timer: Any = None
        self.connect_sent = False
        self.disconnect_sent = False
        self.opened = False
        self.muted = False
        self.connect_at = 0.0  # for the reply latencies (metrics.py), set only with --metrics-port
        self.receive_at = 0.0  # the oldest websocket.receive not answered yet (0: none)
        self.compressor: Any = None  # deflate.SocketCompressor when the handshake chose permessage-deflate

    def _details(self) -> dict:
        client = "{}:{}".format(*self.info.client) if self.info.client else None
        return {"path": self.info.path, "client": client}

    # -- handshake ---------------------------------------------------------------------

    def onConnect(self, request: Any) -> defer.Deferred:
        refused = origins.policy_for(self.server.config.allowed_origins).refusal(self.info.headers)
        if refused is not None:  # before anything is sent: no consumer runs for a foreign page (origins.py)
            logger.info("WebSocket %s from %s refused with 403: %s", self.info.path, self._details()["client"], refused)
            raise ConnectionDeny(403, "Origin not allowed")
        self.server.connections.add(self)
        if self.server.stats is not None:
            self.server.stats.websockets_opened += 1
            self.connect_at = time.monotonic()
        self.reply_channel = self.server.new_reply_channel(self)
        wanted = self.server.config.ws_protocols
        self.subprotocol = next((p for p in request.protocols if p in wanted), None)
        # The handshake stays pending while websocket.connect waits in the sender (a full channel, a layer
        # outage: up to --send-timeout); the connect timeout starts once it is on the channel.
        self.handshake = defer.Deferred()
        self.connect_sent = True  # queued: from here on the application hears of the end of this socket
        self.server.track_connection(self.reply_channel, self.info.path)
        self.server.send_soon(
            "websocket.connect",
            websocket_connect_message(self.info, self.reply_channel),
            self._connect_not_sent,
            owner=self,
            on_sent=self._connect_queued,
            kind="connect",
        )
        self.server.log_action("websocket", "connecting", self._details())
        return self.handshake

    def _connect_queued(self) -> None:
        """websocket.connect is on its channel: the application has `websocket_connect_timeout` to answer."""
        if self.handshake is not None and self.connect_timer is None:
            self.connect_timer = reactor.callLater(
                self.server.config.websocket_connect_timeout, self._connect_timed_out
            )

    def _connect_not_sent(self, exc: Exception) -> None:
        if self.handshake is None:
            return
        self.server.count("websocket_connects_refused_503")
        if isinstance(exc, SendTimeout):
            # The sender logs the episode once (not one line per refused handshake).
            why, level = f"websocket.connect is full or the channel layer unreachable ({exc})", logging.DEBUG
        else:
            why, level = f"cannot send websocket.connect ({type(exc).__name__}: {exc})", logging.WARNING
        self._reject(why, 503, level=level, reason="Channel layer unavailable")

    def _connect_timed_out(self) -> None:
        self.connect_timer = None
        if self.handshake is not None:
            self._reject(
                f"not accepted within {self.server.config.websocket_connect_timeout}s (no reply to websocket.connect:"
                " is a worker running for this layer, and did its connect consumer finish? A Channels 1.x worker"
                " sends nothing when that consumer raises; see the worker's log)",
                level=logging.WARNING,
                reason=f"not accepted within {self.server.config.websocket_connect_timeout}s",
            )

    def _accept(self) -> None:
        handshake, self.handshake = self.handshake, None
        self._cancel_connect_timer()
        handshake.callback(self.subprotocol)

    def _reject(self, why: str, code: int = 403, level: int = logging.INFO, reason: str | None = None) -> None:
        """Refuse the pending handshake: `why` goes to the log, `reason` (default `why`) to the status line."""
        handshake, self.handshake = self.handshake, None
        self._cancel_connect_timer()
        logger.log(level, "WebSocket %s from %s rejected: %s", self.info.path, self._details()["client"], why)
        self.server.log_action("websocket", "rejected", self._details())
        handshake.errback(ConnectionDeny(code, reason or why))

    def _cancel_connect_timer(self) -> None:
        if self.connect_timer is not None and self.connect_timer.active():
            self.connect_timer.cancel()
        self.connect_timer = None

    # -- replies -------------------------------------------------------------------------

    def handle_reply(self, message: dict) -> None:
        connecting = self.handshake is not None
        try:
            actions = websocket_actions(message, connecting)
        except BadReply as exc:
            logger.error("Bad WebSocket reply on %s: %s", self.reply_channel, exc)
            if connecting:
                self._reject("the application sent an invalid reply", 500)
            elif self.opened:
                self._close(CLOSE_INTERNAL_ERROR)
            return
        stats = self.server.stats
        if stats is not None:
            if connecting and (actions.reject or actions.accept):
                stats.latency_ws_connect.observe(time.monotonic() - self.connect_at)
            if actions.send and self.receive_at:
                stats.latency_ws_receive.observe(time.monotonic() - self.receive_at)
                self.receive_at = 0.0
        if actions.reject:
            if message.get("close") == CLOSE_INTERNAL_ERROR:
                # What the worker sends on a pending connect when the consumer raised (a deny is a plain close).
                self._reject(
                    "the worker's websocket.connect consumer raised an exception (it answered close 1011,"
                    " internal error); the traceback is in the worker's log",
                    level=logging.WARNING,
                    reason="the application failed",
                )
            else:
                self._reject("rejected by the application")
            return
        if actions.accept:
            self._accept()
        if not self.opened:
            return
        if self.state != self.STATE_OPEN:
            # Closing or closed: Autobahn would raise (or log) for each frame. Nobody can read it any more.
            self.server.count("replies_dropped")
            logger.debug("Dropped a reply for %s: the socket is closing", self.reply_channel)
            return
        for payload, binary in actions.send:
            self.sendMessage(payload, binary)
        if actions.close is not None:
            self._close(actions.close)

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        """Autobahn's plain write path, but straight to an idle socket (see `socket_write`).

        A group message to a thousand sockets then leaves as it is framed,
        not after the whole batch, and costs no write registration per socket.
        Chopped, synced and queued writes and octet logging keep Autobahn's
        path; the Autobahn internals this reads are in `compat`. A client
        that lets more than `--max-output-buffer` pile up is closed and
        aborted (`output_limit`), and nothing more is queued for it.
        """
        plain = compat.autobahn_write_is_plain(self, sync, chopsize)
        # Nothing queued is within any output limit: a fan-out's common case skips the size check.
        sock = compat.idle_tcp_socket(self.transport) if plain else None
        if not output_limit.websocket_may_write(self, idle=sock is not None):
            return
        if self.server.stats is not None:
            self.server.stats.bytes_out_websocket += len(data)
        if not plain:
            super().sendData(data, sync, chopsize)
            return
        if sock is None:
            socket_write.write(self.transport, data)
        else:
            socket_write.write_idle(sock, self.transport, data)
        compat.autobahn_count_sent(self, len(data))

    def sendMessage(
        self,
        payload: bytes,
        isBinary: bool = False,
        fragmentSize: int | None = None,
        sync: bool = False,
        doNotCompress: bool = False,
    ) -> None:
        """Autobahn's, except on a socket that deflates: there `deflate` frames it (one frame, shared
        with other sockets when they get the same message); Autobahn's own deflate stream is never used.
        A plain unfragmented message is framed by `PlainFrames` (once for the sockets that get it in a row)."""
        compressor = self.compressor
        if self.state != self.STATE_OPEN:
            super().sendMessage(payload, isBinary, fragmentSize, sync, doNotCompress)
        elif compressor is not None:
            self.sendData(compressor.frame(payload, isBinary, doNotCompress), sync)
        elif (
            fragmentSize is None
            and not self.autoFragmentSize
            and self._perMessageCompress is None
            and not 0 < self.maxMessagePayloadSize < len(payload)  # Autobahn raises for that one: let it
        ):
            # What Autobahn's sendPreparedMessage does for a socket without compression: the frame is
            # built once per message, not once per socket, when a group send reaches many in a row.
            self.sendData(_plain_frames.frame(payload, isBinary), sync)
        else:
            super().sendMessage(payload, isBinary, fragmentSize, sync, doNotCompress)

    def _close(self, code: int) -> None:
        """Start the closing handshake with `code`.

        Autobahn's `sendClose` only takes the codes an application may send
        (1000, 3000-4999) and raises on the server's own 1001/1011/1013, so
        the close frame is sent directly.
        """
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=code, isReply=False)

    # -- events from the client ------------------------------------------------------------

    def onOpen(self) -> None:
        self.opened = True
        compression = self.factory.compression
        if compression is not None:
            self.compressor = compression.for_socket(self.websocket_extensions_in_use)
        self.server.log_action("websocket", "connected", self._details())
        timeout = self.server.websocket_timeout
        if timeout and timeout > 0:
            self.lifetime_timer = reactor.callLater(timeout, self._lifetime_over)
        self._shed_handshake()

    def _shed_handshake(self) -> None:
        """Drop what only the handshake needed: the parsed request, Autobahn's copies of it, the request's
        headers (websocket.receive and .disconnect carry only the path), then compact `__dict__` (a dict
        never shrinks as keys go). About a third of an idle socket's Python memory."""
        state = self.__dict__
        for name in _HANDSHAKE_ONLY:
            state.pop(name, None)
        if self.info.headers:
            self.info = replace(self.info, headers=[])
        state["send_queue"] = _ListQueue(state.get("send_queue", ()))
        self.__dict__ = dict(state)

    def _lifetime_over(self) -> None:
        self.lifetime_timer = None
        logger.info(
            "WebSocket %s reached its maximum lifetime of %ss: closing",
            self.reply_channel,
            self.server.websocket_timeout,
        )
        self._close(1000)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.muted:
            return
        self.order += 1
        if not self.receive_at and self.server.stats is not None:
            self.receive_at = time.monotonic()
        message = websocket_receive_message(self.reply_channel, self.info.path, self.order, payload, isBinary)
        # A full channel or a layer outage makes the frame wait; past a few waiting frames the socket
        # stops being read (`pause_reading`), so TCP pushes back on the client.
        self.server.send_soon("websocket.receive", message, self._receive_not_sent, owner=self)

    def pause_reading(self) -> None:
        """A few of this socket's frames wait in the sender: stop reading it (TCP pushes back on the client).

        A socket that gets this far is sending faster than the layer takes:
        from now on it is read 4 KiB at a time, so one read of tiny frames
        (Autobahn parses a whole read at once) holds the reactor for
        hundreds of frames, not thousands, and others are served between.
        """
        self.transport.pauseProducing()
        _set_read_size(self.transport, FLOODER_READ_SIZE)

    def resume_reading(self) -> None:
        self.transport.resumeProducing()

    def _receive_not_sent(self, exc: Exception) -> None:
        if self.muted:
            return
        self.muted = True
        if isinstance(exc, SendTimeout):
            # Logged once per episode by the sender; counted here.
            self.server.count("websockets_closed_send_timeout")
            code = CLOSE_TRY_AGAIN_LATER
        elif isinstance(exc, getattr(self.server.channel_layer, "MessageTooLarge", SendTimeout)):
            logger.warning("A frame from %s is too large for the channel layer: closing with 1009", self.reply_channel)
            code = CLOSE_TOO_BIG
        else:
            logger.error(
                "Cannot send websocket.receive (%s: %s): closing %s", type(exc).__name__, exc, self.reply_channel
            )
            code = CLOSE_INTERNAL_ERROR
        self._close(code)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.server.connections.discard(self)
        self._cancel_connect_timer()
        if self.lifetime_timer is not None and self.lifetime_timer.active():
            self.lifetime_timer.cancel()
        self.lifetime_timer = None
        self.handshake = None
        self._send_disconnect(code or CLOSE_ABNORMAL)
        self.server.forget_reply_channel(self.reply_channel)
        if self.opened:
            self.server.log_action("websocket", "disconnected", self._details())

    def _send_disconnect(self, code: int) -> None:
        if self.connect_sent and not self.disconnect_sent:
            self.disconnect_sent = True
            message = websocket_disconnect_message(self.reply_channel, self.info.path, self.order + 1, code)
            self.server.send_disconnect(self.reply_channel, "websocket.disconnect", message)

    # -- server shutdown -----------------------------------------------------------------

    def announce_shutdown(self) -> None:
        """Send the application this connection's disconnect (1001), ahead of the close frame."""
        self._send_disconnect(CLOSE_GOING_AWAY)

    def begin_shutdown(self) -> None:
        """Tell the application first, then close with 1001 (going away)."""
        self._send_disconnect(CLOSE_GOING_AWAY)
        if self.handshake is not None:
            self._reject("the server is shutting down", 503)
        elif self.opened:
            self._close(CLOSE_GOING_AWAY)
        else:
            self.dropConnection(abort=True)

    def abort(self) -> None:
        self.dropConnection(abort=True)
