"""The group membership index: a group send runs only on shards holding members, and never misses one.

Two private redis-servers act as two client-side shards. Shard A is always
the group's home (its index lives there); members are placed on A or B by
picking channel names the ring puts there.
"""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from channels_core.layers import RedisChannelLayer
from channels_core.layers.redis import group_index
from channels_core.layers.redis.scripts import GROUP_ADD, GROUP_DISCARD, INDEX_DROP, INDEX_PUT, STALE_BUILD_MS
from tests.support.redis_server import RedisServer

A, B = 0, 1


@pytest.fixture(scope="module")
def servers():
    started = [RedisServer(), RedisServer()]
    try:
        for server in started:
            server.start()
        yield started
    finally:
        for server in started:
            server.cleanup()


@pytest.fixture
def make_layer(servers, key_prefix):
    made: list[RedisChannelLayer] = []

    def make(count: int = 2, **options) -> RedisChannelLayer:
        layer = RedisChannelLayer(hosts=[s.url for s in servers[:count]], prefix=key_prefix, **options)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        layer.flush()
        layer.close()


@pytest.fixture
def layer(make_layer):
    return make_layer()


def channel_on(layer: RedisChannelLayer, shard: int, stem: str = "member") -> str:
    """A plain channel name whose queue lives on `shard`."""
    return next(f"{stem}{i}" for i in itertools.count() if layer.ring.get(f"{stem}{i}") == shard)


def group_homed(layer: RedisChannelLayer, shard: int, stem: str = "room") -> str:
    index = group_index.index_of(layer)
    return next(f"{stem}{i}" for i in itertools.count() if index.home(f"{stem}{i}") == shard)


def index_fields(layer: RedisChannelLayer, group: str) -> dict[bytes, bytes] | None:
    """The index hash (None when absent)."""
    index = group_index.index_of(layer)
    home = index.home(group)
    reply = layer.shards[home].execute("HGETALL", index.key(group, home))
    if not reply:
        return None
    return dict(reply.items()) if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2], strict=True))


def listed(layer: RedisChannelLayer, group: str) -> set[int]:
    """The shards the index names."""
    fields = index_fields(layer, group) or {}
    return {i for i, f in enumerate(group_index.index_of(layer).fields) if f in fields}


def evalsha_calls(servers, shard: int) -> int:
    """Scripts run on a server (a first call answered NOSCRIPT and retried counts once)."""
    client = servers[shard].client()
    try:
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
        return stats.get("calls", 0) - stats.get("failed_calls", 0)
    finally:
        client.close()


def drain(layer: RedisChannelLayer, channel: str) -> list[dict]:
    got = []
    while True:
        name, message = layer.receive([channel])
        if name is None:
            return got
        got.append(message)


def test_send_runs_only_on_the_home_and_the_shards_holding_members(layer, servers):
    group = group_homed(layer, A)
    on_a = channel_on(layer, A)
    layer.group_add(group, on_a)
    assert listed(layer, group) == {A}
    before = evalsha_calls(servers, B)
    layer.send_group(group, {"n": 1})
    assert evalsha_calls(servers, B) == before, "B holds no member: no script may run there"
    assert drain(layer, on_a) == [{"n": 1}]

    on_b = channel_on(layer, B)
    layer.group_add(group, on_b)
    assert listed(layer, group) == {A, B}
    layer.send_group(group, {"n": 2})
    assert evalsha_calls(servers, B) == before + 3  # the add, its new index version (B joined), the send
    assert drain(layer, on_a) == [{"n": 2}] and drain(layer, on_b) == [{"n": 2}]

    layer.group_discard(group, on_b)
    assert listed(layer, group) == {A}
    layer.group_discard(group, on_a)
    assert listed(layer, group) == set()
    assert set(index_fields(layer, group)) == {b"#", b"#v"}, "an emptied group keeps its index (no rebuild on re-add)"


def test_a_sender_that_cached_the_index_skips_the_home(make_layer, servers):
    layer = make_layer()
    group = group_homed(layer, A)
    on_b = channel_on(layer, B)
    layer.group_add(group, on_b)
    layer.send_group(group, {"n": 1})  # reads the index on A, then B
    before = evalsha_calls(servers, A)
    for n in range(2, 5):
        layer.send_group(group, {"n": n})
    assert evalsha_calls(servers, A) == before, "steady state: only the shard holding members"
    assert [m["n"] for m in drain(layer, on_b)] == [1, 2, 3, 4]


def test_a_shard_joining_is_noticed_by_a_sender_that_cached_the_older_list(make_layer):
    sender, adder = make_layer(), make_layer()  # two processes: separate caches
    group = group_homed(sender, A)
    on_b, on_a = channel_on(sender, B), channel_on(sender, A)
    adder.group_add(group, on_b)
    sender.send_group(group, {"n": 1})  # caches "B"
    adder.group_add(group, on_a)  # A joins: the index's version rises on A and B
    sender.send_group(group, {"n": 2})
    assert drain(sender, on_a) == [{"n": 2}]
    assert drain(sender, on_b) == [{"n": 1}, {"n": 2}]


def test_a_cached_shard_found_empty_sends_the_sender_back_to_the_index(make_layer):
    sender, other = make_layer(), make_layer()
    group = group_homed(sender, A)
    on_b, on_a = channel_on(sender, B), channel_on(sender, A)
    other.group_add(group, on_b)
    sender.send_group(group, {"n": 1})  # caches "B"
    other.group_discard(group, on_b)
    other.group_add(group, on_a)
    sender.send_group(group, {"n": 2})
    assert drain(sender, on_a) == [{"n": 2}]
    assert listed(sender, group) == {A}


def test_a_cached_shard_refilled_by_an_add_still_in_progress_is_not_trusted(make_layer):
    """B emptied and left the index; A joined (complete); an add on B has only done its first half."""
    sender, other = make_layer(), make_layer()
    group = group_homed(sender, A)
    on_b, on_a, again = channel_on(sender, B), channel_on(sender, A), channel_on(sender, B, "again")
    other.group_add(group, on_b)
    sender.send_group(group, {"n": 1})  # caches "B"
    other.group_discard(group, on_b)
    other.group_add(group, on_a)
    shard, gkey, _, _, _ = _steps(sender, group, again)
    shard.evalsha(GROUP_ADD, [gkey], [again, "", sender._group_ttl])  # B holds a member again
    sender.send_group(group, {"n": 2})
    assert drain(sender, on_a) == [{"n": 2}]


def test_a_version_remembered_from_an_expired_index_is_not_taken_for_a_new_one(make_layer):
    sender, other = make_layer(), make_layer()
    group = group_homed(sender, A)
    on_b, on_a = channel_on(sender, B), channel_on(sender, A)
    other.group_add(group, on_b)
    sender.send_group(group, {"n": 1})  # caches "B" with the index's version
    index = group_index.index_of(sender)
    sender.shards[A].execute("DEL", index.key(group, A))  # the index expired; B's membership did not
    other.group_add(group, on_a)  # a new index, built from every shard: A and B
    sender.send_group(group, {"n": 2})
    assert drain(sender, on_a) == [{"n": 2}]


def test_a_sender_that_saw_the_group_empty_asks_the_home_again(make_layer):
    sender, other = make_layer(), make_layer()
    group = group_homed(sender, A)
    on_b = channel_on(sender, B)
    other.group_add(group, on_b)
    other.group_discard(group, on_b)  # the index stays, listing no shard
    sender.send_group(group, {"n": 1})  # remembers "no shard"
    other.group_add(group, on_b)
    sender.send_group(group, {"n": 2})
    assert drain(sender, on_b) == [{"n": 2}]


def test_the_home_found_empty_through_the_cached_list_leaves_the_index(make_layer):
    sender, other = make_layer(), make_layer()
    group = group_homed(sender, A)
    on_a = channel_on(sender, A)
    other.group_add(group, on_a)
    sender.send_group(group, {"n": 1})  # caches "A"
    other.group_discard(group, on_a)  # (the discard drops A's entry itself)
    shard, gkey, home, ikey, field = _steps(sender, group, on_a)
    gen = shard.evalsha(GROUP_ADD, [gkey], [on_a, "", sender._group_ttl])[0]  # an add that never finished...
    home.evalsha(INDEX_PUT, [ikey], [field, gen, sender._group_ttl, "1"])
    shard.evalsha(GROUP_DISCARD, [gkey], [on_a, ""])  # ...and a discard that died before its compare-and-delete
    assert listed(sender, group) == {A}
    sender.send_group(group, {"n": 2})  # reaches A through its cached list and finds it empty
    assert listed(sender, group) == set()


def test_a_member_on_another_shard_than_the_home_is_reached(layer):
    group = group_homed(layer, A)
    on_b = channel_on(layer, B)
    layer.group_add(group, on_b)
    assert listed(layer, group) == {B}
    layer.send_group(group, {"n": 1})
    assert drain(layer, on_b) == [{"n": 1}]
    assert layer.group_channels(group) == [on_b]


def test_one_shard_has_no_index_and_no_extra_round_trip(make_layer, servers, key_prefix):
    layer = make_layer(count=1)
    assert group_index.index_of(layer) is None
    before = evalsha_calls(servers, A)
    layer.group_add("solo", "solo.member")
    assert evalsha_calls(servers, A) == before + 1
    layer.send_group("solo", {"n": 1})
    assert evalsha_calls(servers, A) == before + 2
    assert drain(layer, "solo.member") == [{"n": 1}]
    client = servers[A].client()
    try:
        assert not [k for k in client.scan_iter(match=key_prefix + "*") if b"#ix" in k]
    finally:
        client.close()


# -- races, step by step -------------------------------------------------------------------


def _steps(layer, group, channel):
    """The keys and field of `channel`'s shard and the group's home, for calling the scripts one by one."""
    index = group_index.index_of(layer)
    shard = layer.ring.get(channel)
    home = index.home(group)
    return (
        layer.shards[shard],
        layer.keys.group_key(group, shard),
        layer.shards[home],
        index.key(group, home),
        index.fields[shard],
    )


def test_an_add_racing_with_an_emptying_discard_keeps_its_entry(layer):
    """The discard empties B and reports its generation; an add on B lands; then the discard's compare-and-delete."""
    group = group_homed(layer, A)
    first, second = channel_on(layer, B, "first"), channel_on(layer, B, "second")
    layer.group_add(group, first)
    shard, gkey, home, ikey, field = _steps(layer, group, first)
    gen = shard.evalsha(GROUP_DISCARD, [gkey], [first, ""])  # B is empty now
    assert gen
    layer.group_add(group, second)  # raises B's generation and the index entry
    home.evalsha(INDEX_DROP, [ikey], [field, gen])  # the discard's late compare-and-delete
    assert listed(layer, group) == {B}
    layer.send_group(group, {"n": 1})
    assert drain(layer, second) == [{"n": 1}]


def test_an_add_whose_index_write_lands_after_the_delete_restores_its_entry(layer):
    group = group_homed(layer, A)
    member = channel_on(layer, B)
    layer.group_add(group, member)
    layer.group_discard(group, member)
    shard, gkey, home, ikey, field = _steps(layer, group, member)
    gen = shard.evalsha(GROUP_ADD, [gkey], [member, "", layer._group_ttl])[0]  # first half of an add
    assert listed(layer, group) == set()
    state, _, version, fields = home.evalsha(INDEX_PUT, [ikey], [field, gen, layer._group_ttl, "1"])  # second half
    assert state == group_index.UPDATED and version  # B joins again
    group_index._spread_version(layer, group_index.index_of(layer), group, version, fields)
    layer.send_group(group, {"n": 1})
    assert drain(layer, member) == [{"n": 1}]


def test_a_late_index_write_of_an_add_already_undone_leaves_a_harmless_entry_that_a_send_drops(layer):
    group = group_homed(layer, A)
    member = channel_on(layer, B)
    layer.group_add(group, member)
    shard, gkey, home, ikey, field = _steps(layer, group, member)
    gen = shard.evalsha(GROUP_ADD, [gkey], [member, "", layer._group_ttl])[0]
    layer.group_discard(group, member)  # empties B, drops the entry
    assert listed(layer, group) == set()
    home.evalsha(INDEX_PUT, [ikey], [field, gen, layer._group_ttl, "1"])  # the add's write arrives late
    assert listed(layer, group) == {B}  # stale: costs one script per send until a send sees B empty
    layer.send_group(group, {"n": 1})
    assert listed(layer, group) == set()
    assert drain(layer, member) == []


def test_concurrent_adds_and_discards_on_one_shard_never_hide_a_member(layer, make_layer):
    """Threads churn members of one group on shard B (and A); after its own add each must get its own send."""
    group = group_homed(layer, A)
    layer.group_add(group, channel_on(layer, A, "anchor"))  # the index exists from the start
    misses: list[str] = []
    rounds = 150

    def churn(stem: str, mine: RedisChannelLayer, shard: int) -> None:
        channel = channel_on(mine, shard, stem)
        for i in range(rounds):
            mine.group_add(group, channel)
            mine.send_group(group, {"from": stem, "i": i})
            if {"from": stem, "i": i} not in drain(mine, channel):
                misses.append(f"{stem} {i}")
            mine.group_discard(group, channel)
            drain(mine, channel)

    # Each thread its own layer (its own cached index, like separate processes); two churn on B,
    # one on the home A, so B's entry and the index's version both keep changing.
    work = [("left", make_layer(), B), ("right", make_layer(), B), ("home", make_layer(), A)]
    threads = [threading.Thread(target=churn, args=args) for args in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert misses == []
    assert listed(layer, group) == {A}, "B emptied last: its entry is gone (A keeps the anchor)"


# -- expiry -------------------------------------------------------------------------------


def test_members_evicted_by_a_send_drop_their_shards_entry(make_layer):
    """A member whose queue head expired unread is evicted by the send, and its shard leaves the index."""
    layer = make_layer(expiry=1)
    group = group_homed(layer, A)
    stay, gone = channel_on(layer, A, "stay"), channel_on(layer, B, "gone")
    layer.group_add(group, stay)
    layer.group_add(group, gone)
    layer.send_group(group, {"n": 1})
    drain(layer, stay)
    time.sleep(1.1)  # "gone" never reads: its message expires
    layer.send_group(group, {"n": 2})
    assert listed(layer, group) == {A}
    assert layer.group_channels(group) == [stay]
    assert drain(layer, stay) == [{"n": 2}]


def test_memberships_that_expire_drop_their_shards_entry(make_layer):
    layer = make_layer(group_expiry=1)
    group = group_homed(layer, A)
    old, fresh = channel_on(layer, B, "old"), channel_on(layer, A, "fresh")
    layer.group_add(group, old)
    time.sleep(0.6)
    layer.group_add(group, fresh)  # keeps the index alive past the old membership
    time.sleep(0.6)
    assert listed(layer, group) == {A, B}
    layer.send_group(group, {"n": 1})
    assert listed(layer, group) == {A}
    assert drain(layer, fresh) == [{"n": 1}] and drain(layer, old) == []


# -- upgrade ------------------------------------------------------------------------------


def _legacy_add(layer, group, channel):
    """What a process of a release without the index does: the membership only, no generation, no index."""
    shard = layer.ring.get(channel)
    gkey = layer.keys.group_key(group, shard)
    now = time.time()
    layer.shards[shard].pipeline([("ZADD", gkey, now, channel), ("EXPIRE", gkey, layer._group_ttl)])


def test_members_added_without_the_index_get_every_message_and_the_next_add_builds_it(layer, servers):
    group = group_homed(layer, A)
    legacy = channel_on(layer, B, "legacy")
    _legacy_add(layer, group, legacy)
    assert index_fields(layer, group) is None
    layer.send_group(group, {"n": 1})  # no index: every shard
    assert drain(layer, legacy) == [{"n": 1}]

    fresh = channel_on(layer, A, "fresh")
    layer.group_add(group, fresh)  # creates the index and asks every shard: finds B
    assert listed(layer, group) == {A, B}
    assert b"*" not in index_fields(layer, group)
    layer.send_group(group, {"n": 2})
    assert drain(layer, legacy) == [{"n": 2}] and drain(layer, fresh) == [{"n": 2}]


def test_an_index_being_built_is_not_trusted(layer, servers):
    group = group_homed(layer, A)
    on_a = channel_on(layer, A)
    layer.group_add(group, on_a)
    index = group_index.index_of(layer)
    layer.shards[A].execute("HSET", index.key(group, A), "*", int(time.time() * 1000))
    before = evalsha_calls(servers, B)
    layer.send_group(group, {"n": 1})
    assert evalsha_calls(servers, B) == before + 1, "while the mark is there, every shard"
    assert drain(layer, on_a) == [{"n": 1}]


def test_a_stale_build_mark_is_taken_over_by_the_next_add(layer):
    group = group_homed(layer, A)
    legacy = channel_on(layer, B, "legacy")
    layer.group_add(group, channel_on(layer, A))
    _legacy_add(layer, group, legacy)  # B not in the index
    index = group_index.index_of(layer)
    stale = int(time.time() * 1000) - STALE_BUILD_MS - 1000
    layer.shards[A].execute("HSET", index.key(group, A), "*", stale)  # a builder died
    layer.group_add(group, channel_on(layer, A, "other"))
    fields = index_fields(layer, group)
    assert b"*" not in fields
    assert listed(layer, group) == {A, B}


def test_group_index_off_maintains_existing_indexes_creates_none_and_sends_everywhere(make_layer, servers):
    layer = make_layer()
    layer.group_index = False  # the setting for a rolling upgrade from a release without the index
    group = group_homed(layer, A)
    on_a = channel_on(layer, A)
    layer.group_add(group, on_a)
    assert index_fields(layer, group) is None
    before = evalsha_calls(servers, B)
    layer.send_group(group, {"n": 1})
    assert evalsha_calls(servers, B) == before + 1
    assert drain(layer, on_a) == [{"n": 1}]

    new = make_layer()  # a process with the index on builds it; the old one keeps it up to date
    new.group_add(group, channel_on(new, A, "x"))
    assert listed(new, group) == {A}
    on_b = channel_on(layer, B)
    layer.group_add(group, on_b)
    assert listed(new, group) == {A, B}
    new.send_group(group, {"n": 2})
    assert drain(new, on_b) == [{"n": 2}]


def test_the_index_key_names_the_shard_layout(make_layer, servers):
    """After adding a shard the old index (which misses members added since) is never read again."""
    two = group_index.index_of(make_layer())
    three = RedisChannelLayer(hosts=[s.url for s in servers] + ["redis://127.0.0.1:1/0"], prefix="unused:")
    try:
        assert group_index.index_of(three).suffix != two.suffix
    finally:
        three.close()
