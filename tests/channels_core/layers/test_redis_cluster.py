"""Redis Cluster settings and key placement: what holds without a server, and what a real cluster confirms."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from channels_core.layers import RedisChannelLayer, RedisClusterChannelLayer
from channels_core.layers.names import list_name
from channels_core.layers.redis.cluster import BUCKET_TAGS, BUCKETS, ClusterMap
from tests.support.redis_cluster import shared_setup, slot_ranges


def _cluster(layer: RedisChannelLayer) -> ClusterMap:
    return layer.shards[0].cluster


def test_url_with_password_options_and_tls():
    layer = RedisChannelLayer(hosts=["rediss+cluster://app:s3cret@h1:7000,h2:7001/?socket_timeout=3"])
    cluster = _cluster(layer)
    assert cluster.startup == [("h1", 7000), ("h2", 7001)]
    assert cluster.tls and cluster.connection_kwargs["password"] == "s3cret"
    assert cluster.connection_kwargs["username"] == "app"
    assert cluster.connection_kwargs["socket_timeout"] == 3.0
    assert "s3cret" not in repr(layer)
    assert len(layer.shards) == BUCKETS


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://h1:7000/3", "only db 0"),
        ("redis+cluster:///", "names no node"),
        ("redis+cluster://h1:x", "not host:port"),
        ("redis+cluster://h1:7000?retries=3", "unknown option 'retries'"),
    ],
)
def test_bad_urls_are_explained(url, message):
    with pytest.raises(ValueError, match=message):
        RedisChannelLayer(hosts=[url])


def test_a_cluster_is_the_only_host():
    with pytest.raises(ValueError, match="no other hosts"):
        RedisChannelLayer(hosts=["redis+cluster://h1:7000", "redis://h2:6379"])


def test_prefix_may_not_hold_a_hash_tag():
    with pytest.raises(ValueError, match="may not hold"):
        RedisChannelLayer(hosts=["redis+cluster://h1:7000"], prefix="app{1}:")


def test_cluster_layer_spellings_agree():
    urls = RedisClusterChannelLayer(hosts=["redis://:pw@h1:7000", ("h2", 7001)])
    dict_form = RedisChannelLayer(hosts=[{"cluster": ["h1:7000", ("h2", 7001)], "password": "pw"}])
    url_form = RedisClusterChannelLayer(hosts="redis+cluster://:pw@h1:7000,h2:7001")
    for layer in (urls, dict_form, url_form):
        assert _cluster(layer).startup == [("h1", 7000), ("h2", 7001)]
        assert _cluster(layer).connection_kwargs["password"] == "pw"
        assert [s.host.hash_tag for s in layer.shards] == ["{" + t + "}" for t, _ in BUCKET_TAGS]


@pytest.mark.parametrize("masters", [1, 2, 3, 4, 6, 8, 12, 16])
def test_buckets_spread_evenly_over_an_evenly_split_cluster(masters):
    """`redis-cli --cluster create` splits the slots evenly: each master then holds the same number of buckets."""
    ranges = slot_ranges(masters)
    per_master = [sum(lo <= slot <= hi for _, slot in BUCKET_TAGS) for lo, hi in ranges]
    assert per_master == [BUCKETS // masters] * masters


def test_every_key_of_a_bucket_is_in_the_bucket_slot():
    """Each script's keys (queue, counters, group, ordering, leases) hash to one slot: the bucket's."""
    layer = RedisChannelLayer(hosts=["redis+cluster://h1:7000"], prefix="app:")
    keys = layer.keys
    for name in ["http.request", "websocket.receive", "server!", "chat.x?abc", "q?xyz"]:
        target = keys.send_target(name)
        slot = layer.shards[target.shard].slot
        assert {key_slot(k) for k in target.keys} == {slot}
        reply = name + "reply"
        assert key_slot(keys.order_key(reply)) == layer.shards[keys.ring.get(list_name(reply))].slot
    for shard in layer.shards:
        owned = [keys.group_key("room", shard.index), keys.global_stats_key(shard.index), keys.election_key()]
        owned += keys.lease_keys(shard.index)
        slots = {key_slot(k) for k in owned[:2] + owned[3:]}
        assert slots == {shard.slot}
    holder = "server!"
    assert key_slot(keys.lease_conn_key(holder)) == layer.shards[keys.lease_shard(holder)].slot


def test_off_cluster_keys_are_unchanged():
    """No hash tags anywhere else: upgrading changes no key of an existing deployment."""
    layer = RedisChannelLayer(hosts=["redis://h1:6379/0", "redis://h2:6379/0"], prefix="asgi:")
    target = layer.keys.send_target("http.request")
    assert target.keys == (b"asgi:http.request", b"asgi:meta:http.request", b"asgi:meta:#global#")
    assert layer.keys.group_key("room", 1) == b"asgi:group:room"
    assert layer.keys.election_key() == b"asgi:lease:sweeper"


@pytest.mark.slow
def test_channels_spread_over_the_masters_of_a_real_cluster(key_prefix):
    """10,000 channels on a 3-master cluster: each master gets its third within 10%, as its keys show."""
    setup = shared_setup()
    layer = RedisChannelLayer(hosts=[setup.url()], prefix=key_prefix, expiry=30)
    try:
        count = 10_000
        for i in range(count):
            layer.send(f"spread{i}.x", {})
        per_master = []
        for address in _cluster(layer).masters():
            server = _cluster(layer).pool(address)
            per_master.append(len(server.execute("KEYS", f"{key_prefix}{{*}}spread*")))
        assert sum(per_master) == count
        assert all(abs(n - count / 3) <= count / 3 * 0.10 for n in per_master), per_master
    finally:
        layer.flush()
        layer.close()
