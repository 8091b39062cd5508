"""The interface server's lease in the channel layer, and what it does when the lease was lost.

With a layer that supports `leases` (`channels_core.layers.contract`),
`LeaseKeeper`:

- renews the server's lease (holder: its reply prefix, `interface.response.X!`,
  so the lease lives on the shard of its replies) every `lease_ttl / 3`
  seconds from its own daemon thread, never the reactor, with info
  {"kind": "interface-server", "pid", "host", "version" (channels-core's),
  "started" (unix time), "connections" (open, all types), "load" (open
  connections by type: {"http": n, "websocket": n}), "dropped" (the
  server's non-zero drop counters)}, read by `manage.py channels_status`;
- tracks each WebSocket in the layer when its `websocket.connect` is queued
  (`Server.track_connection`, through `call_layer` so the track is made
  before the connection's disconnect), with a `websocket.disconnect`
  (code 1006) for a sweeper to send if this process dies;
- sends each WebSocket's disconnect with `lease_release` (`Server.disconnect_op`):
  sent if the connection was still tracked, so it goes out exactly once
  whether this server closes it or a sweeper did. HTTP disconnects are
  plain sends;
- on `"swept"` (the lease expired, e.g. the process was frozen or cut off
  from Redis for longer than the lease, and a worker's sweeper already sent
  the disconnects) or `"lost"` (the layer lost its state: Redis restarted
  without persistence, FLUSHALL; groups are gone too) closes every
  WebSocket tracked before it (those tracked since are untouched: their
  connect ran after it) with 1012 (service restart), logged once as a WARNING, so
  clients (`WebSocketBridge`) reconnect and their connect consumers join
  their groups again. After "swept" the sweeper's disconnects stand; after
  "lost" the tracking is gone, so the disconnects are plain sends;
- at graceful shutdown ends the lease once the disconnects went out (if
  some could not be sent, the lease is left to expire: a sweeper sends
  those).

A release that finds nothing for a connection this server tracked asks the
layer at once (a renewal) whether it was swept or lost, so a close just
after a Redis restart still sends its disconnect.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from channels_core.layers.contract import supports

from .wire_messages import websocket_disconnect_message

if TYPE_CHECKING:
    from .server import Server

logger = logging.getLogger("interface_server.lease")

CLOSE_SERVICE_RESTART = 1012
DISCONNECT_CHANNEL = "websocket.disconnect"
WORKER_CHECK_INTERVAL = 1.0
"""How often the keeper looks at the workers' leases once a look found no worker on http.request.

While workers are there it looks once per renewal (every lease_ttl / 3), so an idle server sends Redis
one renewal and one look every 5 s besides its blocking read, not a call every second."""
MISSING_CHECKS = 3
"""Checks in a row that must find no worker on http.request before HTTP is answered 503 at once."""
TRACK_RETRY = 1.0
"""Seconds between attempts to track a connection while the layer cannot be reached."""
DROP_COUNTERS = ("send_timeouts", "send_errors", "replies_dropped", "disconnects_lost")
"""The server's counters (`server.counters`) of messages it dropped, published with its lease."""


class LeaseKeeper:
    """Keeps `server`'s lease and plugs leases into its connect/disconnect path (see the module docstring)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.layer = server.channel_layer
        self.holder = server.reply_prefix
        self.ttl = float(server.config.lease_ttl)
        self.interval = self.ttl / 3
        self.info: dict[str, Any] = {
            "kind": "interface-server",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "version": package_version(),
            "started": time.time(),
        }
        self._known: set[str] = set()  # tracked by us (reactor adds, sender thread removes)
        self._confirmed: set[str] = set()  # the layer holds their entry (as of the track)
        self._swept: set[str] = set()  # their entry went with a sweep: the sweeper sent their disconnect
        self._lost: set[str] = set()  # their entry went with the layer's state: send plainly
        self._renew_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._http_workers_seen = False
        self._missing_checks = 0
        self._no_http_consumer = False
        self.events: list[str] = []
        """"swept"/"lost" answers seen, in order (for tests and status)."""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Install the hooks on the server and start renewing."""
        self.server.track_connection = self.track  # type: ignore[method-assign]
        self.server.disconnect_op = self.disconnect_op
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop renewing; end the lease unless some disconnect could not be sent (then a sweeper sends it)."""
        self._stop.set()
        lost = getattr(self.server, "counters", {}).get("disconnects_lost", 0)

        def end() -> None:
            try:
                if lost:
                    logger.warning(
                        "%d disconnects could not be sent: the lease is left to expire, a worker's sweeper sends them",
                        lost,
                    )
                else:
                    self.layer.lease_end(self.holder)
            except Exception as exc:
                logger.warning("Could not end the lease %s (%s: %s)", self.holder, type(exc).__name__, exc)

        # Off the reactor, bounded: a frozen Redis must not hold the exit.
        ender = threading.Thread(target=end, name="lease-end", daemon=True)
        ender.start()
        ender.join(timeout)

    # -- renewing (keeper thread) ------------------------------------------------------------

    def _run(self) -> None:
        next_renewal = next_check = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_renewal:
                self._renew_logged()
                # While failing, retry every second: after a long outage, renew before a sweeper sweeps us.
                next_renewal = time.monotonic() + (min(1.0, self.interval) if self._failing else self.interval)
            if time.monotonic() >= next_check:
                self._check_http_consumers()
                # Confirm a missing worker (and notice its return) quickly; otherwise one look per renewal.
                missing = self._missing_checks > 0
                next_check = time.monotonic() + (WORKER_CHECK_INTERVAL if missing else self.interval)
            self._stop.wait(min(WORKER_CHECK_INTERVAL, self.interval))

    def _renew_logged(self) -> None:
        try:
            self.renew()
            if self._failing:
                self._failing = False
                logger.warning("Lease %s renewed again", self.holder)
        except Exception as exc:
            if not self._failing:
                self._failing = True
                if isinstance(exc, ConnectionError):  # the layer logs its own outage once
                    logger.warning("Lease %s: renewal waits for the channel layer; retrying every second", self.holder)
                else:
                    logger.warning(
                        "Cannot renew the lease %s (%s: %s); retrying every second",
                        self.holder,
                        type(exc).__name__,
                        exc,
                    )
            else:
                logger.debug("Lease renewal still fails (%s: %s)", type(exc).__name__, exc)

    # -- is anything consuming http.request? (keeper thread) ---------------------------------

    def no_http_consumer(self) -> bool:
        """True when no live worker lease listens on `http.request` (any thread; see `_check_http_consumers`)."""
        return self._no_http_consumer

    def _check_http_consumers(self) -> None:
        """Look at the workers' leases: is one listening on `http.request`?

        Only once this server has seen such a worker (so servers whose
        consumers hold no lease, e.g. `runserver`'s threads, never answer
        503 for it), and only after `MISSING_CHECKS` checks in a row found
        none (a Redis restart or a flush empties the leases until the
        workers renew, within a second). Looks come once per renewal while
        workers are there, every second once one found none. The bound: a
        SIGKILLed last worker is noticed its `--lease-ttl` (5 s) plus up to
        one renewal period (5 s by default) plus about 2 s later; a stopped
        one (SIGTERM ends its lease) up to one renewal period plus 2 s later.
        """
        try:
            holders = self.layer.lease_holders()
        except Exception:
            self._missing_checks = 0
            self._set_no_http_consumer(False)  # the sender's own unavailability check covers an outage
            return
        listening = any(
            info.get("kind") == "worker" and "http.request" in (info.get("channels") or ())
            for info in holders.values()
            if isinstance(info, dict)
        )
        if listening:
            self._http_workers_seen = True
            self._missing_checks = 0
        elif self._http_workers_seen:
            self._missing_checks += 1
        self._set_no_http_consumer(self._missing_checks >= MISSING_CHECKS)

    def _set_no_http_consumer(self, value: bool) -> None:
        if value and not self._no_http_consumer:
            logger.warning(
                "No worker listens on http.request any more (the last worker's lease ended or expired): "
                "answering HTTP requests 503 at once until one starts"
            )
        elif not value and self._no_http_consumer:
            logger.warning("A worker listens on http.request again: HTTP requests are sent to it")
        self._no_http_consumer = value

    def renew(self) -> str:
        """Renew now (any thread) and act on the answer; returns it."""
        with self._renew_lock:
            info = self.current_info()
            state = self.layer.lease_renew(self.holder, self.ttl, info)
            if state in ("swept", "lost"):
                # The connections tracked before this event lost their entry (and, if lost, their groups);
                # those tracked since (their connect ran after it) are fine and stay open.
                try:
                    still = set(self.layer.lease_connections(self.holder))
                except Exception:
                    still = set()
                gone = self._confirmed - still
                (self._swept if state == "swept" else self._lost).update(gone)
                self._confirmed.difference_update(gone)
                self.events.append(state)
                if state == "lost":
                    self._http_workers_seen = False  # the workers' leases went too: wait to see them again
                self.server_call(self._close_all, state, gone)
            return state

    def current_info(self) -> dict[str, Any]:
        """What the lease carries now: `info` plus connections, load and drops (small: renewed every ttl/3)."""
        # A copy taken in one step under the GIL: the reactor adds and removes connections meanwhile.
        connections = self.server.connections.copy()
        from .ws_protocol import WebSocketProtocol

        websockets = sum(
            1
            for connection in connections
            if isinstance(connection, WebSocketProtocol) or getattr(connection, "is_fallback_socket", False)
        )
        load = {"http": len(connections) - websockets, "websocket": websockets}
        counters = dict(getattr(self.server, "counters", None) or {})
        dropped = {name: n for name, n in counters.items() if name in DROP_COUNTERS and n}
        return dict(self.info, connections=len(connections), load=load, dropped=dropped)

    def server_call(self, fn: Any, *args: Any) -> None:
        from twisted.internet import reactor

        reactor.callFromThread(fn, *args)

    def _close_all(self, state: str, gone: set[str]) -> None:
        """In the reactor: close the WebSockets in `gone` with 1012 so their clients reconnect and rejoin."""
        from .ws_protocol import WebSocketProtocol

        handlers = (self.server.reply_handlers.get(reply_channel) for reply_channel in gone)
        sockets = [c for c in handlers if isinstance(c, WebSocketProtocol) or getattr(c, "is_fallback_socket", False)]
        if state == "lost":
            why = (
                "the channel layer lost its state (Redis restarted without persistence, or was flushed): "
                "groups are empty"
            )
        else:
            why = (
                f"this server's lease expired (no renewal for over {self.ttl:g}s) and a worker already sent "
                "its connections' disconnects"
            )
        level = logging.WARNING if sockets else logging.INFO
        logger.log(level, "%s; closing %d WebSockets with 1012 so clients reconnect and rejoin", why, len(sockets))
        for connection in sockets:
            try:
                if getattr(connection, "is_fallback_socket", False):  # SSE or long-polling (fallback_session.py)
                    connection.close_socket(CLOSE_SERVICE_RESTART, "the channel layer was reset")
                elif getattr(connection, "opened", False):
                    connection._close(CLOSE_SERVICE_RESTART)
                elif getattr(connection, "handshake", None) is not None:
                    connection._reject("the channel layer was reset", 503, reason="Service restart")
            except Exception:
                logger.exception("Failed to close %r after the lease was %s", connection, state)

    # -- the server's hooks ------------------------------------------------------------------

    def track(self, reply_channel: str, path: str) -> None:
        """`Server.track_connection` (reactor): record the connection in the layer, off the reactor, in order."""
        self._known.add(reply_channel)
        message = websocket_disconnect_message(reply_channel, path, 0, 1006)

        def track() -> None:
            # The sender runs calls after the round's sends: the disconnect may already have gone out.
            if reply_channel not in self._known:
                return
            self.layer.lease_track(self.holder, reply_channel, DISCONNECT_CHANNEL, message)
            self._confirmed.add(reply_channel)

        def failed(exc: Exception) -> None:
            # A layer outage: retry while the socket is open, so a server that dies later still has it swept.
            logger.debug("Could not track %s in the lease (%s: %s)", reply_channel, type(exc).__name__, exc)
            if reply_channel in self._known and not self._stop.is_set():
                from twisted.internet import reactor

                reactor.callLater(TRACK_RETRY, retry)

        def retry() -> None:
            if reply_channel in self._known:
                self.server.call_layer(track, None, failed)

        self.server.call_layer(track, None, failed)

    def disconnect_op(self, reply_channel: str, channel: str, message: dict) -> None:
        """`Server.disconnect_op` (sender thread): release a tracked WebSocket, else send plainly.

        Raises what the layer raises (the sender retries); the bookkeeping
        changes only once the disconnect is settled.
        """
        if reply_channel not in self._known or channel != DISCONNECT_CHANNEL:
            self.layer.send(channel, message)
            return
        if not self.layer.lease_release(self.holder, reply_channel, channel, message):
            if reply_channel in self._confirmed:
                self.renew()  # the entry vanished: learn now whether it was swept or lost
            if reply_channel in self._swept:
                pass  # the sweeper sent it
            else:
                # Lost with the layer's state (its ordering state too: the next order is 0 again), or never
                # tracked (the track failed): nobody sent it.
                if reply_channel in self._lost and "order" in message:
                    message = dict(message, order=0)
                self.layer.send(channel, message)
        for tracked in (self._known, self._confirmed, self._swept, self._lost):
            tracked.discard(reply_channel)


def package_version() -> str | None:
    """The installed channels-core version (as `interface-server --version` says it); None from a bare source tree.

    From the package metadata: interface_server imports no more of channels_core than its layers.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("channels-core")
    except PackageNotFoundError:
        return None


def start_lease_keeper(server: Server) -> LeaseKeeper | None:
    """A started `LeaseKeeper` if the server's layer supports leases, else None."""
    if not supports(server.channel_layer, "leases"):
        return None
    if server.config.lease_ttl <= 0:
        logger.info("Leases are off (lease_ttl 0): a SIGKILLed server's disconnects will not be sent")
        return None
    keeper = LeaseKeeper(server)
    keeper.start()
    return keeper
