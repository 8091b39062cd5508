"""Client-side sharding spreads work evenly: names, groups and Redis commands per shard.

The ring alone (no Redis) is checked for several sets of server labels; the
commands are counted on 2 and 4 private redis-servers (INFO commandstats).
"""

from __future__ import annotations

import random
import string
import uuid

import pytest

from channels_core.layers import names
from channels_core.layers.redis import RedisChannelLayer
from channels_core.layers.redis.sharding import HashRing
from tests.support.redis_server import RedisServer

TOLERANCE = 0.10  # each shard within 10% of its share


def random_channels(rng: random.Random, count: int) -> list[str]:
    """The kinds of channel the stack uses, in equal parts: plain, process (`x!y`) and single-reader (`x?y`)."""

    def word(n: int) -> str:
        return "".join(rng.choices(string.ascii_letters, k=n))

    kinds = [
        lambda: f"websocket.receive.{word(8)}",
        lambda: f"interface.response.{word(8)}!{word(12)}",
        lambda: f"http.response?{word(12)}",
    ]
    return [kinds[i % 3]() for i in range(count)]


def label_sets(n: int) -> list[list[str]]:
    """Server labels as the layer makes them: fixed ports, random ports and several databases of one server."""
    rng = random.Random(n)
    return [
        [f"redis://127.0.0.1:{6379 + i}/0" for i in range(n)],
        [f"redis://10.0.0.{i + 1}:6379/0" for i in range(n)],
        [f"redis://127.0.0.1:6379/{i}" for i in range(n)],
        *([f"redis://127.0.0.1:{rng.randint(1024, 65535)}/0" for _ in range(n)] for _ in range(20)),
    ]


def shares(counts: list[int]) -> list[float]:
    """Each shard's count as a fraction of its fair share (1.0 = exactly even)."""
    fair = sum(counts) / len(counts)
    return [c / fair for c in counts]


@pytest.mark.parametrize("n", [2, 4])
def test_queues_and_groups_spread_within_10_percent_of_the_share(n):
    rng = random.Random(14)
    queues = [names.list_name(c) for c in random_channels(rng, 10_000)]
    groups = [f"room.{i}.{uuid.UUID(int=rng.getrandbits(128)).hex}" for i in range(1000)]
    # A group's membership entries live on the shard of the member's queue: 1 to 10 members each.
    members = [names.list_name(c) for g in groups for c in random_channels(rng, rng.randint(1, 10))]
    for labels in label_sets(n):
        ring = HashRing(labels)
        for what, items in (("queues", queues), ("group members", members)):
            counts = [0] * n
            for item in items:
                counts[ring.get(item)] += 1
            worst = max(abs(s - 1) for s in shares(counts))
            assert worst <= TOLERANCE, f"{what} on {labels}: {counts}"


@pytest.mark.parametrize("n", [2, 3, 4])
def test_adding_a_shard_moves_about_one_in_n_plus_one_and_only_to_the_new_shard(n):
    rng = random.Random(n)
    queues = sorted({names.list_name(c) for c in random_channels(rng, 10_000)})
    for labels in label_sets(n + 1)[:8]:
        old, new = HashRing(labels[:n]), HashRing(labels)
        moved = [q for q in queues if old.get(q) != new.get(q)]
        # The expected fraction is 1/(n+1); 10,000 names make the sampling noise about 0.4%.
        assert abs(len(moved) / len(queues) - 1 / (n + 1)) < 0.03, (labels, len(moved))
        assert all(new.get(q) == n for q in moved), "a name moved between two old shards"
        # Removing the shard again puts every name back where it was.
        assert all(HashRing(labels[:n]).get(q) == old.get(q) for q in moved)


def test_placement_ignores_the_order_of_hosts():
    labels = [f"redis://127.0.0.1:{6379 + i}/0" for i in range(4)]
    forward, backward = HashRing(labels), HashRing(labels[::-1])
    for i in range(2000):
        assert labels[forward.get(f"n{i}")] == labels[::-1][backward.get(f"n{i}")]


# -- commands on real servers ------------------------------------------------------


def mixed_workload(layer: RedisChannelLayer, rng: random.Random, channels: int, groups: int) -> int:
    """Sends to and receives from `channels` random channels, and group adds/sends/discards; messages delivered."""
    delivered = 0
    chans = random_channels(rng, channels)
    for ch in chans:
        layer.send(ch, {"text": "x"})
    for ch in chans:
        got, _ = layer.receive([names.list_name(ch)])
        delivered += got is not None
    for i in range(groups):
        group = f"g{i}"
        members = random_channels(rng, 3)
        for member in members:
            layer.group_add(group, member)
        layer.send_group(group, {"text": "y"})
        for member in members:
            got, _ = layer.receive([names.list_name(member)])
            delivered += got is not None
            layer.group_discard(group, member)
    return delivered


def command_calls(server: RedisServer) -> int:
    client = server.client()
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    # INFO, PING, HELLO, CLIENT and friends are the test's or the pool's, not the workload's.
    ours = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_rpush", "cmdstat_lpop", "cmdstat_blpop", "cmdstat_zadd")
    return sum(v["calls"] for k, v in stats.items() if k in ours or k.startswith("cmdstat_ev"))


@pytest.mark.parametrize("n", [2, 4])
def test_commands_spread_within_10_percent_on_real_servers(n):
    servers = [RedisServer() for _ in range(n)]
    layer = None
    try:
        for server in servers:
            server.start()
        layer = RedisChannelLayer(hosts=[s.url for s in servers], prefix=f"spread{n}:", expiry=60)
        for server in servers:
            client = server.client()
            client.config_resetstat()
            client.close()
        delivered = mixed_workload(layer, random.Random(n), channels=3000, groups=300)
        assert delivered == 3000 + 3 * 300
        counts = [command_calls(s) for s in servers]
        worst = max(abs(s - 1) for s in shares(counts))
        print(f"commands per shard on {n} servers: {counts} (worst {worst:.1%} from the share)")
        assert worst <= TOLERANCE, counts
    finally:
        if layer is not None:
            layer.close()
        for server in servers:
            server.cleanup()


def test_after_adding_a_shard_queued_messages_of_moved_channels_are_read_only_with_the_old_hosts():
    """What the add-a-shard procedure relies on: nothing moves messages; readers on the old list drain them."""
    servers = [RedisServer() for _ in range(3)]
    layers = []
    try:
        for server in servers:
            server.start()
        urls = [s.url for s in servers]
        old = RedisChannelLayer(hosts=urls[:2], prefix="addshard:")
        new = RedisChannelLayer(hosts=urls, prefix="addshard:")
        layers += [old, new]
        moved = next(f"work.{i}" for i in range(1000) if new.ring.get(f"work.{i}") == 2)
        stayed = next(f"work.{i}" for i in range(1000) if new.ring.get(f"work.{i}") != 2)
        for channel in (moved, stayed):
            old.send(channel, {"n": 1})
        # With the new list, a channel that stayed is read as before; one that moved looks empty...
        assert new.receive([stayed])[0] == stayed
        assert new.receive([moved]) == (None, None)
        # ... while its message still waits on its old server, where a reader with the old list finds it.
        assert old.receive([moved])[0] == moved
        # New sends to the moved channel go to the new server only.
        new.send(moved, {"n": 2})
        assert old.receive([moved]) == (None, None)
        assert new.receive([moved])[0] == moved
    finally:
        for layer in layers:
            layer.close()
        for server in servers:
            server.cleanup()
