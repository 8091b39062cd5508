"""Where a channel's messages live: Redis key names and the shard that holds them.

    queue         prefix + queue name     "asgi:http.request", "asgi:server!"
    group         prefix + "group:" + g   a sorted set of (queue, local part)
    ordering      prefix + "order:" + reply channel
    counters      stats_prefix + queue name, with "x?random" counted as "x?"
    all counters  stats_prefix + "#global#"
    leases        prefix + "lease:expiry" / "lease:info" / "lease:swept" /
                  "lease:sweeping" (one set per shard), prefix + "lease:conn:" +
                  holder, and prefix + "lease:sweeper" (the election, first shard)
    presence      prefix + "presence:" + g (a hash per shard: channel -> record),
                  prefix + "presence#of:" + server queue, prefix + "presence#holders"
                  (see `presence`: on the shard of the member's queue, beside its lease)

On Redis Cluster each shard is a bucket of slots and its keys carry the
bucket's hash tag right after the prefix ("asgi:{0123}http.request"), so
every key a script touches is in one slot. Elsewhere the tag is empty and the
keys are the ones above.

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

    tags: Sequence[str] = ()
    """Each shard's hash tag (`{0123}` on Redis Cluster), all of one length; empty means no tags."""

    def __post_init__(self) -> None:
        tags = list(self.tags) or [""] * len(self.shards)
        if len(tags) != len(self.shards) or len({len(t) for t in tags}) != 1:
            raise ValueError("KeyLayout needs one hash tag per shard, all of one length")
        self.prefix_bytes = self.prefix.encode("ascii")
        self._prefixes = [(self.prefix + tag).encode("ascii") for tag in tags]
        self._stats_prefixes = [self.stats_prefix + tag for tag in tags]
        self._name_start = len(self._prefixes[0])
        self._targets: dict[str, SendTarget] = {}
        self._plans: dict[tuple[str, ...], list[tuple[S, list[bytes]]]] = {}

    def shard_prefix(self, shard: int) -> bytes:
        """The prefix of every key on shard `shard`: the layer's prefix and the shard's hash tag."""
        return self._prefixes[shard]

    def key(self, name: str) -> bytes:
        """The key of queue (or other per-name object) `name`, on the shard the ring gives `name`."""
        return self._prefixes[self.ring.get(name)] + name.encode("ascii")

    def key_on(self, shard: int, name: str) -> bytes:
        """The key of `name` on shard `shard` (objects every shard has one of)."""
        return self._prefixes[shard] + name.encode("ascii")

    def group_key(self, group: str, shard: int) -> bytes:
        """Shard `shard`'s part of `group`: its members whose queues live there."""
        return self.key_on(shard, "group:" + group)

    def order_key(self, reply_channel: str) -> bytes:
        return self.key_on(self.ring.get(names.list_name(reply_channel)), "order:" + reply_channel)

    def global_stats_key(self, shard: int) -> bytes:
        """Shard `shard`'s counters of every send (summed over shards by `global_statistics`)."""
        return (self._stats_prefixes[shard] + "#global#").encode("ascii")

    def lease_keys(self, shard: int) -> tuple[bytes, bytes, bytes, bytes]:
        """Shard `shard`'s lease keys: expiry (zset), info (hash), swept (zset), sweeping (hash)."""
        return tuple(self.key_on(shard, "lease:" + what) for what in ("expiry", "info", "swept", "sweeping"))  # type: ignore[return-value]

    def lease_conn_key(self, holder: str) -> bytes:
        return self.key_on(self.lease_shard(holder), "lease:conn:" + holder)

    def election_key(self) -> bytes:
        """The sweeper election, on the first shard."""
        return self.key_on(0, "lease:sweeper")

    def lease_shard(self, holder: str) -> int:
        """The index of the shard holding `holder`'s lease and connections."""
        return self.ring.get(names.list_name(holder))

    def stats_key(self, qname: str, shard: int | None = None) -> bytes:
        """The counters of queue `qname` on `shard` (default: the queue's own shard)."""
        if shard is None:
            shard = self.ring.get(qname)
        return (self._stats_prefixes[shard] + stats_name(qname)).encode("ascii")

    def queue_name(self, key: bytes) -> str:
        """The queue name of a queue key (the inverse of `key`)."""
        return key[self._name_start :].decode("ascii")

    def shard_of(self, qname: str) -> S:
        """The shard holding queue `qname`, its ordering state and its group memberships."""
        return self.shards[self.ring.get(qname)]

    def send_target(self, channel: str) -> SendTarget:
        """Keys, capacity and shard for a send to `channel` (cached: every send asks)."""
        qname = names.list_name(channel)
        target = self._targets.get(qname)
        if target is None:
            shard = self.ring.get(qname)
            keys: tuple[bytes, ...] = (self.key_on(shard, qname),)
            if self.statistics:
                keys += (self.stats_key(qname, shard), self.global_stats_key(shard))
            target = SendTarget(keys, self.capacity_rules.get(qname), shard)
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
                shard = self.ring.get(name)
                per_shard.setdefault(shard, []).append(self.key_on(shard, name))
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
