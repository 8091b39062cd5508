"""Connections to one Redis server: a bounded pool, error translation, blocking pops.

redis-py's own pool raises "Too many connections" once a burst of threads
exceeds its size (100 by default since redis-py 6); this pool makes callers
wait for a free connection instead. Blocking reads wait on the socket with
their own timeout, so a BLPOP never collides with `socket_timeout`.
"""

from __future__ import annotations

import logging
import math
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
from .redis_py_private import socket_of
from .scripts import Script

logger = logging.getLogger("channels_core.layers.redis")

_NETWORK_ERRORS = (rexc.ConnectionError, rexc.TimeoutError, OSError)
# Where a command's own error reply is collected separately, these come from connecting (AUTH, SELECT) or
# from a server that wants a password: the server refuses our settings, retrying cannot help.
# (AuthenticationError is a ConnectionError: catch these first.)
_REFUSED = (rexc.AuthenticationError, rexc.ResponseError)
MIN_REDIS_VERSION = (5, 0)


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
            logger.warning("Redis at %s is unreachable (%s); retrying", self.label, exc)
        return LayerConnectionError(f"Redis at {self.label} is unreachable: {exc}")

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

    def succeeded(self) -> None:
        with self._cond:
            since, self._down_since = self._down_since, None
        if since is not None:
            logger.warning("Redis at %s is reachable again after %.1fs", self.label, time.monotonic() - since)

    # -- commands ----------------------------------------------------------------

    def execute(self, *args: Any) -> Any:
        """Run one command and return its reply."""
        return self.pipeline((args,))[0]

    def pipeline(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Run several commands in one round trip; a command's error reply is raised."""
        conn = self.acquire()
        try:
            conn.send_packed_command(conn.pack_commands(commands))
            replies = []
            error = None
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except rexc.ResponseError as exc:
                    error = error or exc
                    replies.append(exc)
        except _REFUSED as exc:
            self.discard(conn)
            raise self.refused(exc) from None
        except _NETWORK_ERRORS as exc:
            self.discard(conn)
            raise self.failed(exc) from None
        except BaseException:
            self.discard(conn)
            raise
        self.release(conn)
        if self._down_since is not None:
            self.succeeded()
        if error is not None:
            raise error
        return replies

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
        except rexc.ResponseError:
            # Some managed services disable INFO; the version check is then skipped.
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


class PendingPop:
    """A blocking pop sent on a connection and not yet answered.

    `count` > 1 uses BLMPOP (Redis 7+: up to `count` elements of the first
    non-empty list in one round trip); otherwise BLPOP.
    """

    def __init__(self, shard: Shard, keys: Sequence[bytes], timeout: float, need_id: bool, count: int = 1) -> None:
        self.shard = shard
        self.conn = shard.acquire()
        self.client_id: int | None = None
        self.error: LayerConnectionError | None = None
        try:
            commands: list[tuple] = []
            if need_id:
                commands.append(("CLIENT", "ID"))
            if count > 1 and shard.supports_blmpop:
                commands.append(("BLMPOP", _format_timeout(timeout), len(keys), *keys, "LEFT", "COUNT", count))
            else:
                commands.append(("BLPOP", *keys, _format_timeout(timeout)))
            self.conn.send_packed_command(self.conn.pack_commands(commands))
            if need_id:
                self.client_id = self.conn.read_response()
        except _REFUSED as exc:
            shard.discard(self.conn)
            raise shard.refused(exc) from None
        except _NETWORK_ERRORS as exc:
            shard.discard(self.conn)
            raise shard.failed(exc) from None
        except BaseException:
            shard.discard(self.conn)
            raise

    def ready(self) -> bool:
        """True once the reply (or an error) is there to collect with `result`."""
        if self.error is not None:
            return True
        try:
            return bool(self.conn.can_read(0))
        except _NETWORK_ERRORS as exc:
            self._fail(exc)
            return True

    def fileno(self) -> int:
        sock = socket_of(self.conn)
        return sock.fileno() if sock is not None else -1

    def wait(self, timeout: float) -> bool:
        """Block on the socket until the reply arrives or `timeout` passes."""
        if self.error is not None:
            return True
        try:
            return bool(self.conn.can_read(timeout))
        except _NETWORK_ERRORS as exc:
            self._fail(exc)
            return True

    def _fail(self, exc: BaseException) -> None:
        self.shard.discard(self.conn)
        self.error = self.shard.failed(exc)

    def result(self) -> tuple[bytes, list[bytes]] | None:
        """Read the reply (call once it is ready) and give the connection back: (key, elements)."""
        if self.error is not None:
            raise self.error
        try:
            reply = self.conn.read_response()
        except _NETWORK_ERRORS as exc:
            self._fail(exc)
            raise self.error from None
        except BaseException:
            self.shard.discard(self.conn)
            raise
        self.shard.release(self.conn)
        self.shard.succeeded()
        if not reply:
            return None
        return (reply[0], reply[1]) if isinstance(reply[1], list) else (reply[0], [reply[1]])

    def abandon(self) -> None:
        self.shard.discard(self.conn)


def _format_timeout(timeout: float) -> int:
    # Whole seconds: Redis before 6.0 rejects fractional BLPOP timeouts.
    return max(1, math.ceil(timeout))


def wait_any(pending: list[PendingPop], timeout: float) -> list[PendingPop]:
    """Wait until at least one pending pop has its reply (or `timeout` passes); return those ready."""
    ready = [p for p in pending if p.ready()]
    if ready or timeout <= 0:
        return ready
    poller = select.poll()
    for p in pending:
        fd = p.fileno()
        if fd < 0:
            return [p]
        poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    events = poller.poll(timeout * 1000)
    return [p for p in pending if p.ready()] if events else []
