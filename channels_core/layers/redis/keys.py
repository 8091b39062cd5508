"""Where a channel's messages live: Redis key names and the shard that holds them.

    queue         prefix + queue name     "asgi:http.request", "asgi:server!"
    group         prefix + "group:" + g   a sorted set of (queue, local part)
    ordering      prefix + "order:" + reply channel
    counters      stats_prefix + queue name, with "x?random" counted as "x?"
    all counters  stats_prefix + "#global#"
    leases        prefix + "lease:expiry" / "lease:info" / "lease:swept" /
                  "lease:sweeping" (one set per shard), prefix + "lease:conn:" +
                  holder, and prefix + "lease:sweeper" (the election, first shard)

A process channel "server!abc" is queued in "server!" with "abc" as its
target (see `framing`), so one process reads all its channels with one pop.
A group's members live on the shard of their queue, so a group send is one
script per shard touching only keys of that shard. A lease holder's keys live
on the shard of the holder's name taken as a queue name: an interface server
that holds its lease as its process channel prefix ("server!") has its lease,
its connections, their ordering state and their replies on one shard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from .. import names
from ..capacity import CapacityRules
from .sharding import HashRing

S = TypeVar("S")

_MAX_CACHED_QUEUES = 10_000
_MAX_CACHED_PLANS = 1000


class SendTarget(NamedTuple):
    """What the send script needs for one channel: its keys, its capacity and the index of its shard."""

    keys: tuple[bytes, ...]
    """The queue, then (with statistics on) its counters and the global counters."""
    capacity: int
    shard: int


@dataclass(eq=False)
class KeyLayout(Generic[S]):
    """Names to keys and keys to shards, for one layer (`S` is the shard type)."""

    prefix: str
    stats_prefix: str
    statistics: bool
    """Whether sends also count into the statistics keys."""
    capacity_rules: CapacityRules
    shards: Sequence[S]
    ring: HashRing

    def __post_init__(self) -> None:
        self.prefix_bytes = self.prefix.encode("ascii")
        self.global_stats_key = (self.stats_prefix + "#global#").encode("ascii")
        self._targets: dict[str, SendTarget] = {}
        self._plans: dict[tuple[str, ...], list[tuple[S, list[bytes]]]] = {}

    def key(self, name: str) -> bytes:
        """The key of queue (or other object) `name`."""
        return self.prefix_bytes + name.encode("ascii")

    def group_key(self, group: str) -> bytes:
        return self.key("group:" + group)

    def order_key(self, reply_channel: str) -> bytes:
        return self.key("order:" + reply_channel)

    def lease_keys(self) -> tuple[bytes, bytes, bytes, bytes]:
        """The per-shard lease keys: expiry (zset), info (hash), swept (zset), sweeping (hash)."""
        return (self.key("lease:expiry"), self.key("lease:info"), self.key("lease:swept"), self.key("lease:sweeping"))

    def lease_conn_key(self, holder: str) -> bytes:
        return self.key("lease:conn:" + holder)

    def lease_shard(self, holder: str) -> int:
        """The index of the shard holding `holder`'s lease and connections."""
        return self.ring.get(names.list_name(holder))

    def stats_key(self, qname: str) -> bytes:
        return (self.stats_prefix + stats_name(qname)).encode("ascii")

    def queue_name(self, key: bytes) -> str:
        """The queue name of a queue key (the inverse of `key`)."""
        return key[len(self.prefix_bytes) :].decode("ascii")

    def shard_of(self, qname: str) -> S:
        """The shard holding queue `qname`, its ordering state and its group memberships."""
        return self.shards[self.ring.get(qname)]

    def send_target(self, channel: str) -> SendTarget:
        """Keys, capacity and shard for a send to `channel` (cached: every send asks)."""
        qname = names.list_name(channel)
        target = self._targets.get(qname)
        if target is None:
            keys: tuple[bytes, ...] = (self.key(qname),)
            if self.statistics:
                keys += (self.stats_key(qname), self.global_stats_key)
            target = SendTarget(keys, self.capacity_rules.get(qname), self.ring.get(qname))
            if len(self._targets) > _MAX_CACHED_QUEUES:
                self._targets.clear()
            self._targets[qname] = target
        return target

    def read_plan(self, wanted: list[str]) -> list[tuple[S, list[bytes]]]:
        """Which keys to read on which shard for a receive on the queue names `wanted` (cached)."""
        cache_key = tuple(wanted)
        plan = self._plans.get(cache_key)
        if plan is None:
            per_shard: dict[int, list[bytes]] = {}
            for name in wanted:
                per_shard.setdefault(self.ring.get(name), []).append(self.key(name))
            plan = [(self.shards[i], keys) for i, keys in sorted(per_shard.items())]
            if len(self._plans) > _MAX_CACHED_PLANS:
                self._plans.clear()
            self._plans[cache_key] = plan
        return plan

    def scan_patterns(self) -> set[str]:
        """SCAN patterns matching every key of this layer."""
        return {glob_escape(self.prefix) + "*", glob_escape(self.stats_prefix) + "*"}


def split(channel: str) -> tuple[str, str]:
    """(queue name, local part): ("server!", "abc") for "server!abc", (channel, "") otherwise."""
    bang = channel.find("!")
    return (channel, "") if bang < 0 else (channel[: bang + 1], channel[bang + 1 :])


def stats_name(qname: str) -> str:
    # Counters for "x?random" go to "x?", so unique reply channels never grow the keyspace.
    mark = qname.find("?")
    return qname if mark < 0 else qname[: mark + 1]


def glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
