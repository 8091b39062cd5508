"""The server: listening endpoints, reply routing, timeouts and graceful shutdown."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet import defer, reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory

from channels_core.layers import heap
from channels_core.layers.contract import supports

from .access import ActionLogger
from .config import ServerConfig
from .metrics import Stats
from .replies import Batch, ReactorReplyReader, ReplyReader
from .sender import Sender

logger = logging.getLogger("interface_server")


def _random(length: int) -> str:
    """Unguessable URL-safe characters (valid in channel names); one urandom call, not one per character."""
    return secrets.token_urlsafe(length)[:length]


class ReplyHandler(Protocol):
    """A connection waiting on a reply channel (`ActiveRequest`, `WebSocketProtocol`)."""

    def handle_reply(self, message: dict) -> None: ...


class Server:
    """Terminates HTTP and WebSocket and turns every event into a channel message.

    `channel_layer` is any object with the ASGI 1.0 layer API (`send`,
    `receive`, `ChannelFull`). Replies are read from this process's own
    `prefix!` channel by one blocking read always pending (`replies.py`):
    inside the reactor when the layer offers `event_receiver` (Redis),
    else in one reader thread.
    """

    def __init__(
        self,
        channel_layer: Any,
        config: ServerConfig | None = None,
        action_logger: ActionLogger | None = None,
    ) -> None:
        self.channel_layer = channel_layer
        self.config = config or ServerConfig()
        self.action_logger = action_logger
        if self.config.websocket_timeout is None:
            self.websocket_timeout = float(getattr(channel_layer, "group_expiry", 86400))
        else:
            self.websocket_timeout = self.config.websocket_timeout
        self.reply_prefix = f"interface.response.{_random(10)}!"
        self.server_header = self.config.server_name.encode("ascii")
        self.reply_handlers: dict[str, ReplyHandler] = {}
        self.connections: set[Any] = set()
        self.listening_ports: list[Any] = []
        self.shutting_down = False
        self.reader: ReplyReader | ReactorReplyReader | None = None
        self.ChannelFull = getattr(channel_layer, "ChannelFull", None) or _NeverRaised
        self.counters: dict[str, int] = {}
        """What was dropped, closed or refused, by name (see `sender.Sender` and `deliver_replies`)."""
        self.stats: Stats | None = Stats() if self.config.metrics_port is not None else None
        """The hot path's counts for `/metrics` (metrics.py); None without --metrics-port (nothing counted)."""
        self.layer_probe: Any = None  # health.LayerProbe, with --metrics-port
        self.disconnect_op: Callable[[str, str, dict], None] = lambda rc, channel, message: channel_layer.send(
            channel, message
        )
        """Sends one disconnect (reply channel, channel, message); called in the sender thread. Replaceable."""
        self.sender = Sender(
            channel_layer,
            self.config.send_timeout,
            lambda rc, channel, message: self.disconnect_op(rc, channel, message),
            self.counters,
            reactor,
        )
        from .http_protocol import HTTPFactory

        self.factory: Factory = HTTPFactory(self)

    # -- reply channels ----------------------------------------------------------

    def new_reply_channel(self, handler: ReplyHandler) -> str:
        channel = self.reply_prefix + _random(16)
        self.reply_handlers[channel] = handler
        return channel

    def forget_reply_channel(self, channel: str | None) -> None:
        if channel is not None:
            self.reply_handlers.pop(channel, None)

    def deliver_replies(self, batch: Batch) -> None:
        """Hand each reply to its connection (runs in the reactor thread).

        A reply for a connection that is gone (or closing: the handler drops
        it itself) is counted in `counters["replies_dropped"]`, logged at DEBUG.
        """
        if self.stats is not None:
            self.stats.replies_in += len(batch)
        for channel, message in batch:
            handler = self.reply_handlers.get(channel)
            if handler is None:
                self.count("replies_dropped")
                logger.debug("Dropped a reply for %s: no such client (gone, or a stale group member)", channel)
                continue
            try:
                handler.handle_reply(message)
            except Exception:
                logger.exception("Failed to deliver a reply on %s", channel)

    # -- sending -------------------------------------------------------------------

    def send_soon(
        self,
        channel: str,
        message: dict,
        on_error: Callable[[Exception], None] | None = None,
        owner: Any = None,
        on_sent: Callable[[], None] | None = None,
        **options: Any,
    ) -> Any:
        """Send from the sender thread, batched with the turn's other sends, in order per channel.

        A full channel or an unreachable layer makes the message wait (its
        `owner`, a connection with `reply_channel`, `pause_reading` and
        `resume_reading`, stops being read while it has a backlog);
        `on_error(exc)` runs if it is not sent within `send_timeout`
        (`sender.SendTimeout`) or the layer refuses it; `on_sent()` once it
        is on the channel. Both run in the reactor thread.
        """
        if self.stats is not None:
            self.stats.message_out(channel)
        return self.sender.put(channel, message, on_error, owner, on_sent, **options)

    def send_disconnect(self, reply_channel: str, channel: str, message: dict) -> None:
        """Send a disconnect with `disconnect_op`: retried until sent (for up to 10 minutes), never dropped
        for a full channel or an outage, and after every message of that connection queued before it."""
        if self.stats is not None:
            self.stats.message_out(channel)
        self.sender.put_disconnect(reply_channel, channel, message)

    def send_best_effort(self, channel: str, message: dict) -> None:
        """Send a message nobody waits for (a body channel's `closed`): failures are counted, at DEBUG."""

        def dropped(exc: Exception) -> None:
            logger.debug("Could not send to %s (%s: %s); dropped", channel, type(exc).__name__, exc)

        if self.stats is not None:
            self.stats.message_out(channel)
        self.sender.put(channel, message, dropped)

    def call_layer(
        self,
        fn: Callable[[], Any],
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Run `fn()` in the sender thread, after what was queued before it was tried once
        (a message waiting for a full channel does not hold it up); callbacks run in the reactor."""
        self.sender.call(fn, on_result, on_error)

    def track_connection(self, reply_channel: str, path: str) -> None:
        """Called when a WebSocket's `websocket.connect` is queued; a hook (the lease keeper fills it in)."""

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def log_action(self, protocol: str, action: str, details: dict) -> None:
        if self.action_logger is not None:
            try:
                self.action_logger(protocol, action, details)
            except Exception:
                logger.exception("The action logger failed")

    # -- running -------------------------------------------------------------------

    def listen(self) -> defer.Deferred:
        """Start listening on every endpoint and file descriptor; fires when all are bound."""
        deferreds = []
        for description in self.config.endpoints:
            endpoint = serverFromString(reactor, description)
            deferreds.append(endpoint.listen(self.factory).addCallback(self._listening, description))
        for fd in self.config.fds:
            port = reactor.adoptStreamPort(fd, _socket_family(fd), self.factory)
            self._listening(port, f"fd:{fd}")
        return defer.gatherResults(deferreds, consumeErrors=True)

    def _listening(self, port: Any, description: str) -> Any:
        self.listening_ports.append(port)
        logger.info("Listening on %s", description)
        return port

    def start(self) -> defer.Deferred:
        """Listen, start the reply reader and arrange a graceful stop on shutdown."""
        self.sender.start()
        self.reader = self._reply_reader()
        self.reader.start()
        reactor.addSystemEventTrigger("before", "shutdown", self.graceful_shutdown)
        from .lease_keeper import start_lease_keeper  # leases: lease_keeper.py

        self.lease_keeper = start_lease_keeper(self)
        if self.lease_keeper is not None:  # ends the lease after graceful_shutdown sent the disconnects
            reactor.addSystemEventTrigger("during", "shutdown", self.lease_keeper.stop)
        if self.config.metrics_port is not None:
            from .metrics_server import start_metrics  # /metrics, /healthz, /readyz on their own port

            try:
                self.metrics_listener = start_metrics(self)  # its port: a process group's parent scrapes it
            except Exception as exc:  # CannotListenError: the port is taken; run() reports it and exits 1
                return defer.fail(exc)
        return self.listen()

    def _reply_reader(self) -> ReplyReader | ReactorReplyReader:
        """In the reactor when the layer can be driven by it (Redis), else a thread."""
        if supports(self.channel_layer, "event_receiver"):
            try:
                return ReactorReplyReader(self.channel_layer, self.reply_prefix, self.deliver_replies, reactor)
            except NotImplementedError as exc:
                logger.info("Reading replies in a thread: %s", exc)
        return ReplyReader(self.channel_layer, self.reply_prefix, self.deliver_replies, reactor.callFromThread)

    def run(self) -> None:
        """Start and run the reactor until SIGTERM/SIGINT (handled gracefully)."""

        def failed(failure):
            logger.error(
                "Cannot listen: %s",
                failure.value.subFailure.getErrorMessage()
                if hasattr(failure.value, "subFailure")
                else failure.getErrorMessage(),
            )
            self.exit_code = 1
            reactor.stop()

        self.exit_code = 0
        # Once it listens, its startup objects leave the garbage collector's full passes (heap.py: the p99).
        reactor.callWhenRunning(lambda: self.start().addCallbacks(lambda _: heap.settle(), failed))
        reactor.run()

    def graceful_shutdown(self) -> defer.Deferred:
        """Stop accepting, let in-flight HTTP finish (up to the grace period), close WebSockets with 1001."""
        self.shutting_down = True
        logger.info("Shutting down: %d connections open", len(self.connections))
        stopped = [defer.maybeDeferred(port.stopListening) for port in self.listening_ports]
        self.listening_ports = []
        done = defer.Deferred()
        deadline = reactor.seconds() + self.config.shutdown_grace

        def close_all() -> None:
            for connection in list(self.connections):
                try:
                    connection.begin_shutdown()
                except Exception:
                    # One connection failing to close must not stop the others from closing gracefully.
                    logger.exception("Failed to begin closing %r; aborting it", connection)
                    try:
                        connection.abort()
                    except Exception:
                        logger.exception("Failed to abort %r", connection)
            check()

        # The application hears of each WebSocket's end before its client does: the disconnects leave
        # first (the sender thread sends them), and the 1001 close frames follow once they are sent, or
        # after ANNOUNCE_WAIT if the layer is slow. A client reconnecting at once to another server then
        # finds its old connection's disconnect already queued ahead of its new connect.
        for connection in list(self.connections):
            announce = getattr(connection, "announce_shutdown", None)
            if announce is not None:
                try:
                    announce()
                except Exception:
                    logger.exception("Failed to send the disconnect of %r", connection)
        self.sender.flush()
        told_by = reactor.seconds() + ANNOUNCE_WAIT

        def wait_told() -> None:
            if self.sender.drained() or reactor.seconds() >= told_by:
                close_all()
            else:
                reactor.callLater(0.01, wait_told)

        def check() -> None:
            if not self.connections or reactor.seconds() >= deadline:
                for connection in list(self.connections):
                    connection.abort()
                if self.reader is not None:
                    self.reader.stop()
                # The disconnect messages queued by the closes above get their own time to leave.
                self.sender.flush()
                drain_until = reactor.seconds() + min(max(self.config.shutdown_grace, 1.0), DISCONNECT_DRAIN)
                drain(drain_until)
            else:
                reactor.callLater(0.05, check)

        def drain(until: float) -> None:
            if self.sender.drained() or reactor.seconds() >= until:
                self.sender.stop()
                done.callback(None)
            else:
                reactor.callLater(0.05, drain, until)

        wait_told()
        return defer.gatherResults(stopped + [done], consumeErrors=True)

    def stop(self) -> None:
        reactor.callFromThread(reactor.stop)


ANNOUNCE_WAIT = 1.0
"""At shutdown, how long (at most) the close frames wait for the disconnects to be sent first."""

DISCONNECT_DRAIN = 10.0
"""At shutdown, how long (at most, and at most the grace period) queued disconnects get to be sent."""


class _NeverRaised(Exception):
    pass


def _socket_family(fd: int) -> int:
    import socket

    sock = socket.socket(fileno=fd)
    try:
        return sock.family
    finally:
        sock.detach()
