"""Redis Cluster: the keyspace as 48 buckets of slots, each one shard of the layer.

Every key a Lua script touches must hash to one slot, so the layer never
spreads one channel's keys, or one shard's part of a group, over slots.
Instead of giving each channel its own slot (a group send would then run
one script per member), the cluster is cut into `BUCKETS` fixed buckets:
bucket `i` is the hash tag `{NNNN}` whose slot lies in the middle of the
`i`-th 48th of the 16,384 slots. Each bucket is one shard of the ordinary
sharded layer (its keys are `prefix{NNNN}name`), so everything the layer
does on shards it does on buckets: one script per send, one per bucket
holding members of a group, one blocking pop per bucket a receive waits on.

Buckets sit where `redis-cli --cluster create` puts evenly split slot ranges,
so 1, 2, 3, 4, 6, 8, 12, 16, 24 or 48 masters each get the same number of
buckets; other counts are within one bucket. Resharding moves slots, and a
bucket's keys go with its slot.

`ClusterMap` knows which master serves each slot (`CLUSTER SLOTS`, asked
again after a MOVED, a failed connection or a failover); `BucketSource` is a
`hosts.ConnectionSource` for one bucket; `cluster_shard.BucketShard` takes its
connections from one pool per master and follows redirections.

Spellings: `redis+cluster://[[user]:password@]h1:7000,h2:7001[/][?options]`
(`rediss+cluster://` for TLS) in `hosts` or `REDIS_URL`, a `hosts` dict
`{"cluster": ["redis://h1:7000", ("h2", 7001)], **connection options}`, and
`RedisClusterChannelLayer(hosts=[startup nodes])`.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.exceptions as rexc
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from .source_settings import KwargsSettings
from .url_parts import host_list, redact

logger = logging.getLogger("channels_core.layers.redis")

URL_SCHEMES = ("redis+cluster", "rediss+cluster")
DEFAULT_PORT = 6379
BUCKETS = 48
# Asking a node for the slot map costs one round trip; a burst of MOVED replies (a reshard) asks once.
_MIN_REFRESH_INTERVAL = 0.05
_NODE_TIMEOUT = 2.0
_ADDRESS_KEYS = ("host", "port", "path", "address", "db")


def _bucket_tags() -> list[tuple[str, int]]:
    """(tag, slot) for each bucket: the first 4-digit tag whose slot is within a quarter bucket of its centre."""
    width = REDIS_CLUSTER_HASH_SLOTS / BUCKETS
    tags = []
    for bucket in range(BUCKETS):
        centre = (bucket + 0.5) * width
        for n in range(10_000):
            tag = f"{n:04d}"
            slot = key_slot(tag.encode("ascii"))
            if abs(slot - centre) <= width / 4:
                tags.append((tag, slot))
                break
    return tags


BUCKET_TAGS = _bucket_tags()
"""(tag, slot) of each bucket, fixed forever: changing them would move every key."""


class ClusterMap(KwargsSettings):
    """Which master serves each slot now, and one connection pool per master.

    Built from startup nodes; asks any node it knows for `CLUSTER SLOTS` on
    first use and after `invalidate()` (a MOVED reply, a refused or broken
    connection), at most once per 50 ms however many threads ask.
    """

    def __init__(
        self,
        startup: list[tuple[str, int]],
        connection_kwargs: dict[str, Any],
        tls: bool = False,
        source: str = "hosts",
        max_connections: int = 64,
        pool_timeout: float = 30,
    ) -> None:
        if not startup:
            raise ValueError(f"{source} names no cluster node: give one or more (host, port) startup nodes")
        kwargs = {k: v for k, v in connection_kwargs.items() if k not in _ADDRESS_KEYS}
        db = connection_kwargs.get("db", 0)
        if db not in (0, "0", None):
            raise ValueError(f"{source}: Redis Cluster has only db 0, not db {db}")
        kwargs.pop("ssl", None)
        kwargs["decode_responses"] = False
        kwargs.setdefault("socket_connect_timeout", 5)
        if kwargs.get("socket_timeout") is None:
            kwargs["socket_timeout"] = 10
        self.connection_kwargs = kwargs
        self.tls = tls or bool(connection_kwargs.get("ssl"))
        self.connection_class = redis.SSLConnection if self.tls else redis.Connection
        if not self.tls and any(k.startswith("ssl_") for k in kwargs):
            raise ValueError(f"{source} gives ssl_* options without ssl=True (or a rediss+cluster:// URL)")
        try:
            self.connection_class(**kwargs)  # not connected: checks the options now rather than at first use
        except TypeError as exc:
            raise ValueError(f"{source} has an option redis-py's connections do not take: {exc}") from None
        self.source = source
        self.startup = list(dict.fromkeys(startup))
        scheme = "rediss+cluster" if self.tls else "redis+cluster"
        self.label = f"{scheme}://{','.join(f'{h}:{p}' for h, p in sorted(self.startup))}"
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self._known = list(self.startup)
        self._slots: list[tuple[str, int] | None] = []
        self._stale = True
        self._refreshed_at = 0.0
        self._lock = threading.Lock()
        self._pools: dict[tuple[str, int], Any] = {}
        self._closed = False
        self.pool_factory: Callable[[ClusterMap, tuple[str, int]], Any] = _no_pools
        """Makes a master's pool: `cluster_shard.NodeShard`, set by the buckets (which this module must not import)."""
        self._down: set[int] = set()
        self._down_since = 0.0
        _ALL_MAPS.add(self)

    # -- the slot map ------------------------------------------------------------

    def node_for(self, slot: int) -> tuple[str, int]:
        """(host, port) of the master serving `slot` now; raises a redis-py ConnectionError when none does."""
        if self._stale or not self._slots:
            self.refresh()
        node = self._slots[slot] if self._slots else None
        if node is None:
            self.invalidate()
            raise rexc.ConnectionError(f"no master of {self.label} serves slot {slot} now (a failover under way?)")
        return node

    def invalidate(self) -> None:
        """The map may be wrong (a MOVED, a dead node): the next lookup asks the cluster again."""
        self._stale = True

    def refresh(self) -> None:
        """Ask the cluster for its slot map now (unless another thread just did)."""
        with self._lock:
            if not self._stale and self._slots:
                return
            wait = self._refreshed_at + _MIN_REFRESH_INTERVAL - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            errors = []
            candidates = list(dict.fromkeys(self._known + self.startup))
            random.shuffle(candidates)
            for host, port in candidates:
                try:
                    slots = self._fetch(host, port)
                except (rexc.ConnectionError, rexc.TimeoutError, OSError) as exc:
                    errors.append(f"{host}:{port}: {exc}")
                    continue
                except rexc.ResponseError as exc:
                    if "cluster support disabled" in str(exc):
                        raise rexc.ResponseError(
                            f"{host}:{port} ({self.source}) is not a Redis Cluster node (cluster-enabled no): "
                            "use a redis:// URL for a single server"
                        ) from None
                    raise
                self._slots = slots
                self._stale = False
                self._refreshed_at = time.monotonic()
                return
            self._refreshed_at = time.monotonic()
            raise rexc.ConnectionError(f"no node of {self.label} answers: {'; '.join(errors)}")

    def _fetch(self, host: str, port: int) -> list[tuple[str, int] | None]:
        conn = self.connection_class(
            **{**self.connection_kwargs, "host": host, "port": port, "socket_timeout": _NODE_TIMEOUT}
        )
        try:
            conn.send_command("CLUSTER", "SLOTS")
            reply = conn.read_response()
        finally:
            conn.disconnect()
        slots: list[tuple[str, int] | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        known = []
        for entry in reply:
            start, end, master = int(entry[0]), int(entry[1]), entry[2]
            for node in entry[2:]:
                known.append(_endpoint(node, host))
            address = _endpoint(master, host)
            for slot in range(start, end + 1):
                slots[slot] = address
        if known:
            self._known = list(dict.fromkeys(known))
        return slots

    def masters(self) -> list[tuple[str, int]]:
        """The masters serving slots now."""
        if self._stale or not self._slots:
            self.refresh()
        return sorted({node for node in self._slots if node is not None})

    # -- outages: one log line per cluster, not one per bucket ---------------------------

    def bucket_down(self, slot: int, exc: BaseException) -> None:
        with self._lock:
            first = not self._down
            self._down.add(slot)
            if first:
                self._down_since = time.monotonic()
        if first:
            logger.warning("Redis Cluster %s: slot %d is unreachable (%s); retrying", self.label, slot, exc)

    def bucket_up(self, slot: int) -> None:
        with self._lock:
            was_down = slot in self._down
            self._down.discard(slot)
            last = was_down and not self._down
        if last:
            took = time.monotonic() - self._down_since
            logger.warning("Redis Cluster %s: every slot is reachable again after %.1fs", self.label, took)

    # -- connections ---------------------------------------------------------------

    def new_connection(self, address: tuple[str, int], **overrides: Any) -> Any:
        """A not yet connected redis-py connection to the node at `address`."""
        host, port = address
        return self.connection_class(**{**self.connection_kwargs, "host": host, "port": port, **overrides})

    def pool(self, address: tuple[str, int]) -> Any:
        """The shared pool (a `NodeShard`) of connections to the node at `address`."""
        pool = self._pools.get(address)
        if pool is None:
            with self._lock:
                pool = self._pools.get(address)
                if pool is None:
                    pool = self._pools[address] = self.pool_factory(self, address)
                    if self._closed:
                        pool.close()
        return pool

    def close(self) -> None:
        self._closed = True
        for pool in list(self._pools.values()):
            pool.close()

    def _after_fork(self) -> None:
        # Another thread of the parent may have held the lock at fork(): it would never be released here.
        self._lock = threading.Lock()

    def buckets(self) -> list[BucketSource]:
        """One connection source per bucket, in bucket order."""
        return [BucketSource(self, i, tag, slot) for i, (tag, slot) in enumerate(BUCKET_TAGS)]


def _no_pools(cluster: ClusterMap, address: tuple[str, int]) -> Any:
    raise RuntimeError("ClusterMap.pool_factory is not set: build shards with cluster_shard.BucketShard")


_ALL_MAPS: weakref.WeakSet[ClusterMap] = weakref.WeakSet()


def _reset_in_child() -> None:
    for cluster in list(_ALL_MAPS):
        cluster._after_fork()


os.register_at_fork(after_in_child=_reset_in_child)


def _endpoint(node: list[Any], asked: str) -> tuple[str, int]:
    host = node[0].decode("utf8") if isinstance(node[0], bytes) else str(node[0])
    # An empty or "?" endpoint means "the address you reached me on".
    return (host if host and host != "?" else asked, int(node[1]))


class BucketSource:
    """One bucket of a cluster as a `hosts.ConnectionSource`: connections to whichever master serves its slot."""

    def __init__(self, cluster: ClusterMap, index: int, tag: str, slot: int) -> None:
        self.cluster = cluster
        self.index = index
        self.hash_tag = "{" + tag + "}"
        self.slot = slot
        self.label = f"{cluster.label} slot {slot}"
        self.ring_name = f"cluster-bucket:{index}"
        self.source = cluster.source

    @property
    def address(self) -> str:
        slots = self.cluster._slots
        node = slots[self.slot] if slots else None
        return f"slot {self.slot} (now {node[0]}:{node[1]})" if node else f"slot {self.slot} (master not yet known)"

    @property
    def tls(self) -> bool:
        return self.cluster.tls

    @property
    def db(self) -> int:
        return 0

    @property
    def password_given(self) -> bool:
        return self.cluster.password_given

    def new_connection(self, **overrides: Any) -> Any:
        return self.cluster.new_connection(self.cluster.node_for(self.slot), **overrides)


# -- parsing -----------------------------------------------------------------------


def is_cluster_url(text: str) -> bool:
    return "://" in text and text.split("://", 1)[0].lower() in URL_SCHEMES


def from_url(url: str, extra: dict[str, Any], source: str) -> ClusterMap:
    """`redis+cluster://[[user]:password@]h1:7000,h2:7001[/][?socket_timeout=..&socket_connect_timeout=..]`."""
    shown = redact(url)
    parts = urlsplit(url)
    options = dict(extra)
    nodes = host_list(parts.netloc, options, DEFAULT_PORT, "a cluster node", f"{source} {shown!r}")
    if not nodes:
        raise ValueError(f"{source} {shown!r} names no node: write e.g. 'redis+cluster://h1:7000,h2:7001'")
    path = parts.path.strip("/")
    if path not in ("", "0"):
        raise ValueError(f"{source} {shown!r}: Redis Cluster has only db 0; end the URL at the last host:port")
    for key, value in parse_qsl(parts.query):
        if key in ("socket_timeout", "socket_connect_timeout"):
            options[key] = float(value)
        else:
            raise ValueError(
                f"{source} {shown!r}: unknown option {key!r} (known: socket_timeout, socket_connect_timeout)"
            )
    return ClusterMap(nodes, options, tls=parts.scheme.lower() == "rediss+cluster", source=source)


def from_dict(options: dict[str, Any], source: str) -> ClusterMap:
    """`{"cluster": [startup nodes as URLs or (host, port)], **connection options}`."""
    options = dict(options)
    nodes = options.pop("cluster")
    if isinstance(nodes, (str, bytes)) or not isinstance(nodes, (list, tuple)) or not nodes:
        raise ValueError(f"{source}['cluster'] must be a list of startup nodes (URLs or (host, port)), not {nodes!r}")
    startup = []
    tls = False
    for node in nodes:
        if isinstance(node, str):
            parts = urlsplit(node if "://" in node else f"redis://{node}")
            if parts.scheme not in ("redis", "rediss") or not parts.hostname:
                raise ValueError(f"{source}['cluster']: {node!r} is not a redis:// URL or host:port of a node")
            tls = tls or parts.scheme == "rediss"
            if parts.password and "password" not in options:
                options["password"] = unquote(parts.password)
                if parts.username:
                    options["username"] = unquote(parts.username)
            startup.append((parts.hostname, parts.port or DEFAULT_PORT))
        elif isinstance(node, (tuple, list)) and len(node) == 2:
            startup.append((str(node[0]), int(node[1])))
        else:
            raise ValueError(f"{source}['cluster']: {node!r} is not a redis:// URL or a (host, port) pair")
    return ClusterMap(startup, options, tls=tls, source=source)
