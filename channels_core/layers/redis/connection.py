"""One Redis server as a shard: a bounded pool of connections, error translation, health.

redis-py's own pool raises "Too many connections" once a burst of threads
exceeds its size (100 by default since redis-py 6); this pool makes callers
wait for a free connection instead. Blocking pops are in `blocking_pop`.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

import redis.exceptions as rexc

from ..errors import LayerConfigurationError, LayerConnectionError
from .hosts import ConnectionSource
from .lean import replies_of
from .redis_py_private import socket_of
from .scripts import Script

logger = logging.getLogger("channels_core.layers.redis")

NETWORK_ERRORS = (rexc.ConnectionError, rexc.TimeoutError, OSError)
# Where a command's own error reply is collected separately, these come from connecting (AUTH, SELECT) or
# from a server that wants a password: the server refuses our settings, retrying cannot help.
# (AuthenticationError is a ConnectionError: catch these first.)
REFUSED = (rexc.AuthenticationError, rexc.ResponseError)
MIN_REDIS_VERSION = (5, 0)


class AclRefused(LayerConfigurationError):
    """The server's ACL refuses a key or a command the layer uses (NOPERM): retrying cannot help."""


_ALL_SHARDS: weakref.WeakSet[Shard] = weakref.WeakSet()


def _reset_pools_in_child() -> None:
    for shard in list(_ALL_SHARDS):
        shard._after_fork()


os.register_at_fork(after_in_child=_reset_pools_in_child)


def _readable(sock: Any) -> bool:
    # poll(), not select(): select() fails on descriptors above 1023, which an
    # interface server holding thousands of sockets reaches.
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class Shard:
    """One Redis server and the connections this process holds to it.

    Connections come from `host` (a `ConnectionSource`), so a shard is the
    same whether its master has a fixed address or is found through Sentinel
    or Cluster. Its users take pooled connections (`acquire`, then `release`
    or `discard`), or a dedicated one (`new_connection`, for a reader an
    event loop drives), run commands (`execute`, `pipeline`, `evalsha`), and
    report a connection's fate (`failed`, `succeeded`) so an outage is
    logged once.
    """

    def __init__(
        self, index: int, host: ConnectionSource, max_connections: int = 64, pool_timeout: float = 30.0
    ) -> None:
        self.index = index
        self.label = host.label
        self.host = host
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self._cond = threading.Condition(threading.Lock())
        self._idle: list[Any] = []
        self._created = 0
        _ALL_SHARDS.add(self)
        self.clock_offset_ms: float | None = None
        self.version: tuple[int, ...] | None = None
        self._down_since: float | None = None
        self._closed = False

    # -- the pool --------------------------------------------------------------

    def acquire(self) -> Any:
        """A connection for this thread's exclusive use; give it back with `release`."""
        deadline = None
        with self._cond:
            while not self._idle and self._created >= self.max_connections:
                if deadline is None:
                    deadline = time.monotonic() + self.pool_timeout
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LayerConnectionError(
                        f"All {self.max_connections} connections to Redis at {self.label} stayed busy for "
                        f"{self.pool_timeout}s; raise max_connections"
                    )
                self._cond.wait(remaining)
            if self._idle:
                conn = self._idle.pop()
                sock = socket_of(conn)
                if sock is not None and _readable(sock):
                    # An idle connection has nothing to read unless the server closed it.
                    conn.disconnect()
                return conn
            self._created += 1
        try:
            return self.host.new_connection()
        except Exception:
            with self._cond:
                self._created -= 1
                self._cond.notify()
            raise

    def new_connection(self) -> Any:
        """A connection outside the pool (not yet connected), for the caller alone; it closes it."""
        return self.host.new_connection()

    @property
    def tls(self) -> bool:
        return self.host.tls

    def release(self, conn: Any) -> None:
        with self._cond:
            closed = self._closed
            if closed:
                # Given back after close() (a blocking read still waiting then): nobody would close it.
                self._created -= 1
            else:
                self._idle.append(conn)
            self._cond.notify()
        if closed:
            try:
                conn.disconnect()
            except Exception:
                pass

    def discard(self, conn: Any) -> None:
        """Drop a connection whose state is unknown (an error, an abandoned read)."""
        try:
            conn.disconnect()
        except Exception:
            pass
        with self._cond:
            self._created -= 1
            self._cond.notify()

    def _after_fork(self) -> None:
        # The parent's sockets belong to the parent; never write to them here.
        self._cond = threading.Condition(threading.Lock())
        self._idle = []
        self._created = 0

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._created -= len(idle)
        for conn in idle:
            try:
                conn.disconnect()
            except Exception:
                pass

    # -- health ----------------------------------------------------------------

    def failed(self, exc: BaseException) -> LayerConnectionError:
        """Record an outage (one log line per outage) and build the error to raise."""
        self.clock_offset_ms = None
        # Under the pool's lock: threads failing (or recovering) together log once, and never
        # read `_down_since` after another thread cleared it.
        with self._cond:
            first = self._down_since is None
            if first:
                self._down_since = time.monotonic()
        if first:
            self.log_down(exc)
        return LayerConnectionError(f"Redis at {self.label} is unreachable: {exc}")

    def log_down(self, exc: BaseException) -> None:
        """Say an outage began (once per outage)."""
        logger.warning("Redis at %s is unreachable (%s); retrying", self.label, exc)

    def log_up(self, down_for: float) -> None:
        """Say the outage is over, after `down_for` seconds."""
        logger.warning("Redis at %s is reachable again after %.1fs", self.label, down_for)

    def acl_refused(self, exc: BaseException) -> AclRefused:
        """The error for a command the server's ACL refuses (NOPERM): a key outside the prefix, a missing command."""
        return AclRefused(
            f"Redis at {self.label} refuses a key or command of the layer to this user ({exc}): its ACL needs "
            "the keys under the layer's prefix (~PREFIX*) and the commands in docs/failure-behaviour.md's ACL recipe"
        )

    def refused(self, exc: BaseException) -> LayerConfigurationError:
        """The error for a server that refuses our settings (no such database, wrong password)."""
        source = f"{self.host.source} ({self.label})"
        if "DB index is out of range" in str(exc):
            db = self.host.db
            count = self._database_count()
            if count:
                return LayerConfigurationError(
                    f"Redis at {self.address} has {count} databases (0-{count - 1}): db {db} of {source} "
                    f"does not exist; use 0-{count - 1}, or raise `databases` in the server's redis.conf"
                )
            return LayerConfigurationError(f"Redis at {self.address} has no db {db} ({source}): {exc}")
        if isinstance(exc, rexc.AuthenticationError):
            if not self.host.password_given:
                return LayerConfigurationError(
                    f"Redis at {self.address} needs a password and {source} gives none: "
                    "write redis://:PASSWORD@host:port/db (or user:PASSWORD@)"
                )
            return LayerConfigurationError(f"Redis at {self.address} refuses the credentials of {source}: {exc}")
        return LayerConfigurationError(f"Redis at {self.address} refuses the connection of {source}: {exc}")

    @property
    def address(self) -> str:
        """host:port, or the socket path."""
        return self.host.address

    def _database_count(self) -> int | None:
        """The server's `databases` setting, from a connection to db 0; None if it will not say."""
        conn = self.host.new_connection(db=0)
        try:
            conn.send_command("CONFIG", "GET", "databases")
            reply = conn.read_response()
            # [name, value] over RESP2, {name: value} over RESP3.
            return int(next(iter(reply.values())) if isinstance(reply, dict) else reply[1])
        except Exception:  # CONFIG is often disabled on managed services: the message then says less
            return None
        finally:
            conn.disconnect()

    def succeeded(self, sent_at: float | None = None) -> None:
        """A command answered: the outage (if any) is over, unless the command was sent before it began.

        A reply already on its way when Redis died (read by one thread just after
        another logged the outage) says nothing about Redis being back.
        """
        with self._cond:
            since = self._down_since
            if since is None or (sent_at is not None and sent_at < since):
                return
            self._down_since = None
        self.log_up(time.monotonic() - since)

    # -- commands ----------------------------------------------------------------

    def execute(self, *args: Any) -> Any:
        """Run one command and return its reply."""
        return self.pipeline((args,))[0]

    def server(self) -> Shard:
        """The pool of the server this shard's commands go to now (itself; a cluster bucket's master's pool)."""
        return self

    def ask_route(self) -> Shard | None:
        """Where a blocking pop must go with ASKING (a Redis Cluster slot mid-migration); None: here."""
        return None

    def owner_of(self, conn: Any) -> Shard:
        """The pool `conn` came from and goes back to: to reach the same server again (CLIENT UNBLOCK)."""
        return self

    def pipeline(self, commands: Sequence[Sequence[Any]], errors: bool = False) -> list[Any]:
        """Run several commands in one round trip.

        A command's error reply is raised (the first one), or with `errors`
        returned in its place, so the caller can tell which commands ran.
        """
        return self.read_replies(self.send_commands(commands), len(commands), errors)

    def send_commands(self, commands: Sequence[Sequence[Any]]) -> Any:
        """Send `commands` on a pooled connection and return it: `read_replies` reads them (and gives it back).

        Sending to several servers before reading any costs one round trip of
        wall time instead of one per server.
        """
        conn = self.acquire()
        # try/except and `dropped`, not a `with` block: a generator context manager costs ~1.4 us
        # a use, twice per command on the path every message takes.
        try:
            conn.channels_sent_at = time.monotonic()
            lean = replies_of(conn)
            if lean is not None:
                lean.send(lean.pack(commands))
            else:
                conn.send_packed_command(conn.pack_commands(commands))
        except BaseException as exc:
            error = self.dropped(conn, exc)
            if error is exc:
                raise
            raise error from None
        return conn

    def read_replies(self, conn: Any, count: int, errors: bool = False) -> list[Any]:
        """The `count` replies waiting on `conn` (from `send_commands`); then `conn` goes back to the pool."""
        error = None
        try:
            lean = replies_of(conn)
            if lean is not None:
                replies = lean.read(count)
                for reply in replies:
                    if isinstance(reply, rexc.ResponseError):
                        error = error or reply
            else:
                replies = []
                for _ in range(count):
                    try:
                        replies.append(conn.read_response())
                    except rexc.ResponseError as exc:
                        error = error or exc
                        replies.append(exc)
        except BaseException as exc:
            dropped = self.dropped(conn, exc)
            if dropped is exc:
                raise
            raise dropped from None
        sent_at = getattr(conn, "channels_sent_at", None)
        self.release(conn)
        if self._down_since is not None:
            self.succeeded(sent_at)
        if isinstance(error, rexc.NoPermissionError):
            raise self.acl_refused(error) from None
        if error is not None and not errors:
            raise error
        return replies

    def dropped(self, conn: Any, exc: BaseException) -> BaseException:
        """Drop `conn` after `exc`; the error to raise: refusals and network errors become the layer's, else `exc`."""
        self.discard(conn)
        if isinstance(exc, REFUSED):
            return self.refused(exc)
        if isinstance(exc, NETWORK_ERRORS):
            return self.failed(exc)
        return exc

    def evalsha(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run a Lua script by SHA, loading it when this server has not seen it."""
        if self.clock_offset_ms is None:
            self.handshake()
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return self.execute(*command)
        except rexc.NoScriptError:
            self.execute("SCRIPT", "LOAD", script.source)
            return self.execute(*command)

    def handshake(self) -> None:
        """Check the server version and measure its clock against ours."""
        before = time.time()
        try:
            reply, info = self.pipeline([("TIME",), ("INFO", "server")])
        except (rexc.ResponseError, AclRefused):
            # Some managed services disable INFO (or an ACL does); the version check is then skipped.
            before = time.time()
            reply, info = self.execute("TIME"), None
        after = time.time()
        server_ms = int(reply[0]) * 1000 + int(reply[1]) / 1000
        self.clock_offset_ms = server_ms - (before + after) * 500
        version = self.version = _parse_version(info)
        if version and version < MIN_REDIS_VERSION:
            found = ".".join(map(str, version))
            raise RuntimeError(f"Redis at {self.label} is version {found}; channels_core needs Redis 5.0 or newer")

    @property
    def supports_blmpop(self) -> bool:
        return self.version is not None and self.version >= (7, 0)

    def now_ms(self) -> float:
        """The Redis server's clock, as estimated at the last handshake."""
        if self.clock_offset_ms is None:
            self.handshake()
        return time.time() * 1000 + (self.clock_offset_ms or 0)


def _parse_version(info: Any) -> tuple[int, ...] | None:
    if isinstance(info, bytes):
        for line in info.decode("utf8", "replace").splitlines():
            if line.startswith("redis_version:"):
                try:
                    return tuple(int(p) for p in line.split(":", 1)[1].strip().split(".")[:2])
                except ValueError:
                    return None
    return None
