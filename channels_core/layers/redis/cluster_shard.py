"""Shards on Redis Cluster: a pool per master, and a bucket shard that follows its slot.

`NodeShard` is one master's pool of connections, shared by every bucket the
master serves (so a process holds connections per master, not per bucket).
`BucketShard` is what the layer sees as a shard: it sends each command to
the master serving its bucket's slot now and follows the cluster's
redirections, which say the command did not run:

- MOVED (the slot has a new master, after a reshard or a failover): the slot
  map is read again and the command retried there;
- ASK (the slot is being migrated and this key has already left): the
  command is sent once to the importing node after ASKING;
- TRYAGAIN (a script's keys are split by a migration in progress) and
  CLUSTERDOWN (a failover under way): retried after a short wait, for up to
  about a second; after that the layer reports an outage as on one server.

So a reshard under traffic costs retries, never errors; a master failover
is an outage of its buckets until a replica takes over.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis.exceptions as rexc

from ..errors import LayerConnectionError
from .cluster import BucketSource, ClusterMap
from .connection import NETWORK_ERRORS, Shard
from .hosts import HostConfig
from .scripts import Script

REDIRECTS = (rexc.AskError, rexc.TryAgainError, rexc.ClusterDownError)
"""Error replies that mean "not run here, now": MovedError is an AskError."""


def not_local(reply: Any) -> bool:
    """A script stopped before its first write (it touches every key first) by a key of a migrating slot."""
    return isinstance(reply, rexc.ResponseError) and "non local key" in str(reply)


def must_retry(reply: Any) -> bool:
    """A reply that says the command (or script) did nothing and should run again, maybe elsewhere."""
    return isinstance(reply, REDIRECTS) or not_local(reply)


_ATTEMPTS = 8
_FIRST_WAIT = 0.01
# How long blocking pops keep going to a slot's importing node after an ASK (a migration takes milliseconds).
_ASK_ROUTE_TTL = 2.0


class NodeShard(Shard):
    """The pool of connections to one cluster node, shared by its buckets."""

    def __init__(self, cluster: ClusterMap, address: tuple[str, int]) -> None:
        host, port = address
        scheme = "rediss" if cluster.tls else "redis"
        config = HostConfig(
            f"{scheme}://{host}:{port}/0",
            cluster.connection_class,
            {**cluster.connection_kwargs, "host": host, "port": port},
            cluster.source,
        )
        super().__init__(-1, config, cluster.max_connections, cluster.pool_timeout)
        self.node = address
        self.cluster = cluster

    def failed(self, exc: BaseException) -> LayerConnectionError:
        # The buckets log outages, once per cluster; a dead node also means the slot map is out of date.
        self.cluster.invalidate()
        self.clock_offset_ms = None
        return LayerConnectionError(f"Redis Cluster node {self.label} is unreachable: {exc}")


class BucketShard(Shard):
    """One bucket of a cluster: the layer's shard, on whichever master serves the bucket's slot."""

    host: BucketSource

    def __init__(self, index: int, host: BucketSource, max_connections: int = 64, pool_timeout: float = 30) -> None:
        super().__init__(index, host, max_connections, pool_timeout)
        self.cluster = host.cluster
        self.cluster.pool_factory = NodeShard
        self.cluster.max_connections = max_connections
        self.cluster.pool_timeout = pool_timeout
        self.slot = host.slot
        self._ask: tuple[tuple[str, int], float] | None = None

    # -- connections come from the current master's pool ---------------------------

    def server(self) -> NodeShard:
        try:
            return self.cluster.pool(self.cluster.node_for(self.slot))
        except NETWORK_ERRORS as exc:
            raise self.failed(exc) from None

    def owner_of(self, conn: Any) -> Shard:
        return getattr(conn, "channels_pool", self)

    def acquire(self) -> Any:
        pool = self.server()
        conn = pool.acquire()
        conn.channels_pool = pool
        return conn

    def release(self, conn: Any) -> None:
        self.owner_of(conn).release(conn)

    def discard(self, conn: Any) -> None:
        self.owner_of(conn).discard(conn)

    def new_connection(self) -> Any:
        try:
            return self.host.new_connection()
        except NETWORK_ERRORS as exc:
            raise self.failed(exc) from None

    def close(self) -> None:
        self.cluster.close()

    def ask_route(self) -> NodeShard | None:
        ask = self._ask
        if ask is None or time.monotonic() > ask[1]:
            return None
        return self.cluster.pool(ask[0])

    def failed(self, exc: BaseException) -> LayerConnectionError:
        self.cluster.invalidate()
        if isinstance(exc, rexc.MovedError):
            self._ask = None
        elif isinstance(exc, rexc.AskError):
            # Blocking pops go to the importing node (with ASKING) for a while; plain commands follow ASK each time.
            self._ask = ((exc.host, int(exc.port)), time.monotonic() + _ASK_ROUTE_TTL)
        if isinstance(exc, (rexc.AskError, rexc.TryAgainError)):
            # A reshard moving this slot: not an outage, nothing to log.
            return LayerConnectionError(f"Redis Cluster slot {self.slot} is moving ({exc}); retrying")
        super().failed(exc)
        return LayerConnectionError(f"Redis Cluster {self.cluster.label}: slot {self.slot} is unreachable: {exc}")

    # Outages are logged once per cluster, not once per bucket.
    def log_down(self, exc: BaseException) -> None:
        self.cluster.bucket_down(self.slot, exc)

    def log_up(self, down_for: float) -> None:
        self.cluster.bucket_up(self.slot)

    # -- commands follow redirections --------------------------------------------------

    def pipeline(self, commands: Sequence[Sequence[Any]], errors: bool = False) -> list[Any]:
        """Run `commands` (all on this bucket's slot) on its master, following MOVED, ASK and TRYAGAIN.

        A redirected pipeline is run again whole: the layer only pipelines
        reads and idempotent writes on one bucket.
        """
        wait = _FIRST_WAIT
        last: BaseException | None = None
        for _ in range(_ATTEMPTS):
            try:
                replies = super().pipeline(commands, errors=True)
            except REDIRECTS as exc:  # raised only for an ACL error next to a redirect: not expected
                replies = [exc]
            redirect = next((r for r in replies if must_retry(r)), None)
            if redirect is None:
                return _first_error_raised(replies, errors)
            last = redirect
            if not_local(redirect):
                self.cluster.invalidate()  # the migration may have ended: MOVED next time
            elif isinstance(redirect, rexc.MovedError):
                self.cluster.invalidate()
                continue
            if isinstance(redirect, rexc.AskError):
                replies = self._asking(redirect, commands)
                if not any(must_retry(r) for r in replies):
                    return _first_error_raised(replies, errors)
            elif isinstance(redirect, rexc.ClusterDownError):
                self.cluster.invalidate()
            time.sleep(wait)
            wait = min(wait * 2, 0.25)
        raise self.failed(last or LayerConnectionError("redirected too often"))

    def _asking(self, ask: rexc.AskError, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Run `commands` once on the node importing the slot, each after ASKING."""
        try:
            pool = self.cluster.pool((ask.host, int(ask.port)))
            interleaved: list[Sequence[Any]] = []
            for command in commands:
                interleaved += [("ASKING",), command]
            return pool.pipeline(interleaved, errors=True)[1::2]
        except LayerConnectionError:
            self.cluster.invalidate()
            return [ask]

    def evalsha(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run a script by SHA; a node that does not know it (a new master, an importing node) gets it loaded."""
        try:
            return super().evalsha(script, keys, args)
        except rexc.NoScriptError:
            # The reply came from another node than the one SCRIPT LOAD reached (ASK, MOVED): load it everywhere.
            self.load_everywhere(script)
            return super().evalsha(script, keys, args)

    def load_everywhere(self, script: Script) -> None:
        try:
            masters = self.cluster.masters()
        except NETWORK_ERRORS as exc:
            raise self.failed(exc) from None
        for address in masters:
            self.cluster.pool(address).execute("SCRIPT", "LOAD", script.source)


def _first_error_raised(replies: list[Any], errors: bool) -> list[Any]:
    if not errors:
        for reply in replies:
            if isinstance(reply, rexc.ResponseError):
                raise reply
    return replies
