"""Which shards hold members of a group, so a group send runs its script only there.

A group's members live on the shards of their queues (see `keys`). Without
an index a group send runs GROUP_SEND on every shard; on Redis Cluster the
layer has 48 bucket shards, so that would be 48 scripts per send. With more
than one shard each group has a *home* shard (the ring's choice for the
group's name) holding an index hash, shard label -> generation:

- every shard keeps, per group, a generation counter (`<group key>#`) that
  every GROUP_ADD raises and returns; group_add then raises the home's entry
  for that shard to at least that value (INDEX_PUT: two round trips when the
  shards differ, one when the member lives on the home shard);
- when a shard's part of the group becomes empty (a discard, or a group send
  that finds every member expired or evicted) the script reports the
  shard's generation, and the caller deletes the home's entry only if it is
  not newer (INDEX_DROP, compare-and-delete). An add that raced with the
  emptying raised the generation first, so its entry survives: no member is
  ever left out of the index once its group_add returned;
- a process's first group send runs GROUP_SEND on the home shard, which also
  returns the index, then on the shards the index names (one round trip per
  Redis server, through the layer's `_evalsha_each`), and remembers the
  index's version and shards. Later sends run GROUP_SEND only on those
  shards; each reply says whether the shard still holds members and which
  version of the index it has seen. A shard that *joins* the index (its field
  was absent) raises the version, and the add writes it on every listed
  shard (`<group key>#v`, VERSION_SET) before it returns, so a sender whose
  list predates the join finds the new version on at least one shard it
  still calls, or finds that shard empty; either sends it back to the home
  for the index, and it then reaches the shards it had missed in the same
  send. A sender with an empty list always asks the home.

An absent index means "every shard": groups whose members were all added
without it (an older release, another shard layout: the index key names
the layout) still get every message. The first add that finds the index
absent creates it marked "being built" (senders still use every shard),
asks every shard whether it holds members of the group (GROUP_GEN, one round
trip per server) and merges their generations before clearing the mark; a
builder that dies leaves the mark, which the next add takes over after
`STALE_BUILD_MS`. The hash keeps a marker field, so a group that empties and
fills again is not rebuilt; it expires `group_expiry` after the last add,
never before its members.

Rolling upgrade from a release without the index: processes of that release
add members without writing the index, and an index built before they stop
would miss those. Deploy the new release with `group_index=False` (it keeps
existing indexes up to date, creates none and sends on every shard), then,
once no process of the old release runs, switch to `group_index=True` (the
default): the first add to each group builds its index from every shard.

With one shard there is nothing to skip: no index, no extra round trip.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from .hosts import ring_name
from .scripts import GROUP_ADD, GROUP_DISCARD, GROUP_GEN, GROUP_SEND, INDEX_DROP, INDEX_FINISH, INDEX_PUT, VERSION_SET

if TYPE_CHECKING:
    from .connection import Shard
    from .layer import RedisChannelLayer

VERSION = "ix1"
_MAX_CACHED_GROUPS = 10_000
# INDEX_PUT's states (GROUP_ADD returns them too when it writes the index itself).
NO_INDEX, UPDATED, BUILD, ABSENT = 0, 1, 2, 3


class GroupIndex:
    """Names and places of one layer's group indexes (one per layer with more than one shard)."""

    def __init__(self, layer: RedisChannelLayer) -> None:
        self.layer = layer
        self.fields = [ring_name(host).encode("utf8") for host in layer.hosts]
        self.by_field = {field: index for index, field in enumerate(self.fields)}
        # The layout is part of the key: after adding or removing a shard the old index (which
        # knows nothing of members added under the new layout) is never read again.
        layout = hashlib.md5(b"\n".join(sorted(self.fields))).hexdigest()[:8]
        self.suffix = f"#{VERSION}.{layout}".encode("ascii")
        self.cache: dict[str, tuple[bytes, tuple[int, ...]]] = {}
        """group -> (index version, shards holding members) as this process last read them."""

    def remember(self, group: str, version: bytes, shards: tuple[int, ...]) -> None:
        if len(self.cache) >= _MAX_CACHED_GROUPS:
            self.cache.clear()
        self.cache[group] = (version, shards)

    def home(self, group: str) -> int:
        """The index of the shard holding `group`'s index."""
        return self.layer.ring.get("group:" + group)

    def key(self, group: str, home: int) -> bytes:
        return self.layer.keys.group_key(group, home) + self.suffix


def index_of(layer: RedisChannelLayer) -> GroupIndex | None:
    """The layer's `GroupIndex`, or None with one shard (nothing to skip)."""
    if len(layer.shards) == 1:
        return None
    index = layer.__dict__.get("_group_index")
    if index is None:
        index = layer.__dict__["_group_index"] = GroupIndex(layer)
    return index


def enabled(layer: RedisChannelLayer) -> bool:
    """Whether this process creates and trusts indexes (False during a rolling upgrade, see above)."""
    return bool(getattr(layer, "group_index", True))


def add(layer: RedisChannelLayer, group: str, qname: str, local: str) -> None:
    """GROUP_ADD on the member's shard, then its generation into the home's index."""
    shard = layer.keys.shard_of(qname)
    gkey = layer.keys.group_key(group, shard.index)
    ttl = layer._group_ttl
    index = index_of(layer)
    if index is None:
        shard.evalsha(GROUP_ADD, [gkey], [qname, local, ttl])
        return
    home = index.home(group)
    ikey = index.key(group, home)
    create = "1" if enabled(layer) else "0"
    field = index.fields[shard.index]
    if home == shard.index:
        _, state, mark, version, listed = shard.evalsha(GROUP_ADD, [gkey, ikey], [qname, local, ttl, field, create])
    else:
        gen = shard.evalsha(GROUP_ADD, [gkey], [qname, local, ttl])[0]
        state, mark, version, listed = layer.shards[home].evalsha(INDEX_PUT, [ikey], [field, gen, ttl, create])
    if version:
        # A shard joined: senders that cached the older list must notice on any listed shard.
        _spread_version(layer, index, group, version, listed)
    if state == BUILD:
        _build(layer, index, group, home, mark)


def _spread_version(layer: RedisChannelLayer, index: GroupIndex, group: str, version: bytes, listed: list) -> None:
    """Write the index's `version` on each listed shard (one round trip per server)."""
    ttl = layer._group_ttl
    shards = sorted({index.by_field[f] for f in listed if f in index.by_field})
    calls = [(layer.shards[i], [layer.keys.group_key(group, i)], (version, ttl)) for i in shards]
    if calls:
        layer._evalsha_each(VERSION_SET, calls)


def _build(layer: RedisChannelLayer, index: GroupIndex, group: str, home: int, mark: bytes) -> None:
    """Ask every shard whether it holds members of `group` and merge their generations into the index."""
    ttl = layer._group_ttl
    calls = [(shard, [layer.keys.group_key(group, shard.index)], (ttl,)) for shard in layer.shards]
    found: list[Any] = []
    for shard, gen in zip(layer.shards, layer._evalsha_each(GROUP_GEN, calls), strict=True):
        if gen:
            found += [index.fields[shard.index], gen]
    version, listed = layer.shards[home].evalsha(INDEX_FINISH, [index.key(group, home)], [mark, ttl, *found])
    if version:
        _spread_version(layer, index, group, version, listed)


def discard(layer: RedisChannelLayer, group: str, qname: str, local: str) -> None:
    """GROUP_DISCARD on the member's shard; if that emptied the shard's part, compare-and-delete its entry."""
    shard = layer.keys.shard_of(qname)
    gkey = layer.keys.group_key(group, shard.index)
    index = index_of(layer)
    if index is None:
        shard.evalsha(GROUP_DISCARD, [gkey], [qname, local])
        return
    home = index.home(group)
    field = index.fields[shard.index]
    if home == shard.index:
        shard.evalsha(GROUP_DISCARD, [gkey, index.key(group, home)], [qname, local, field])
        return
    gen = shard.evalsha(GROUP_DISCARD, [gkey], [qname, local])
    if gen:
        layer.shards[home].evalsha(INDEX_DROP, [index.key(group, home)], [field, gen])


def _parse_index(reply: Any) -> tuple[bytes, list[bytes]] | None:
    """(version, listed shard fields) of an index as HGETALL gives it; None when absent or being built."""
    if not reply or not isinstance(reply, (list, dict)):
        return None
    pairs = dict(reply.items()) if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2], strict=True))
    if b"*" in pairs or b"#" not in pairs:
        return None
    return pairs.get(b"#v", b""), [f for f in pairs if not f.startswith(b"#")]


def send(layer: RedisChannelLayer, group: str, payload: bytes) -> tuple[int, int]:
    """Run GROUP_SEND where `group` has members; (members skipped because full, members evicted).

    Steady state: one script per shard of the list this process cached, each
    reply confirming that the shard still holds members and has the list's
    version (a shard that joined since raised it on every listed shard).
    Otherwise, and the first time, the home first (its reply carries the
    index), then the listed shards not reached yet.
    """
    index = index_of(layer)

    def call(shard: Shard, index_key: bytes | None) -> tuple[Shard, list[bytes], tuple]:
        keys = [layer.keys.group_key(group, shard.index)]
        if layer.statistics_enabled:
            keys.append(layer.keys.global_stats_key(shard.index))
        field = b""
        if index_key is not None:
            keys.append(index_key)
            field = index.fields[shard.index]  # type: ignore[union-attr]
        rules = layer._lua_capacity
        if layer.capacity_rules.has_regex_rules:
            rules = layer._exact_capacity_rules(shard, keys[0]) + rules
        prefix = layer.keys.shard_prefix(shard.index)
        args = (payload, layer._expiry_ms, layer._group_ttl, layer._queue_ttl, prefix, layer.capacity, field, *rules)
        return shard, keys, args

    if index is None:
        replies = layer._evalsha_each(GROUP_SEND, [call(shard, None) for shard in layer.shards])
        return sum(r[1] for r in replies), sum(r[2] for r in replies)

    trusted = enabled(layer)
    reached: dict[int, Any] = {}  # shard -> its GROUP_SEND reply
    cached = index.cache.get(group) if trusted else None
    if cached and cached[1]:  # an empty list proves nothing: nobody to notice a join
        version, shards = cached
        for i, reply in zip(
            shards, layer._evalsha_each(GROUP_SEND, [call(layer.shards[i], None) for i in shards]), strict=True
        ):
            reached[i] = reply
        if all(not r[3] and r[5] == version for r in reached.values()):
            return sum(r[1] for r in reached.values()), sum(r[2] for r in reached.values())

    # The home: its members get the message (unless already reached) and its reply carries the index.
    home = index.home(group)
    ikey = index.key(group, home)
    inline = home not in reached  # the home's script gets the index key (and drops its own entry)
    if inline:
        reached[home] = layer.shards[home].evalsha(GROUP_SEND, *call(layer.shards[home], ikey)[1:])
        listed = _parse_index(reached[home][4])
    else:
        listed = _parse_index(layer.shards[home].execute("HGETALL", ikey))
    if listed is not None and trusted:
        version, fields = listed
        wanted = {index.by_field[f] for f in fields if f in index.by_field}
    else:
        wanted = set(range(len(layer.shards)))
    targets = sorted(wanted - reached.keys())
    if targets:
        reached.update(
            zip(targets, layer._evalsha_each(GROUP_SEND, [call(layer.shards[i], None) for i in targets]), strict=True)
        )
    if listed is not None:
        # Listed shards that hold no member any more: drop them unless an add raced in.
        empty = {i for i, r in reached.items() if r[3]}
        drops = [x for i in sorted(empty - ({home} if inline else set())) for x in (index.fields[i], reached[i][3])]
        if drops:
            layer.shards[home].evalsha(INDEX_DROP, [ikey], drops)
        if trusted:
            index.remember(group, version, tuple(sorted(wanted - empty)))
    else:
        index.cache.pop(group, None)
    return sum(r[1] for r in reached.values()), sum(r[2] for r in reached.values())
