"""Redis-specific lease behaviour: a sweeper killed mid-sweep, and holders on another shard than their channel."""

from __future__ import annotations

import time

import pytest

from channels_core.layers import RedisChannelLayer
from channels_core.layers.redis.scripts import LEASE_SWEEP


@pytest.fixture
def layer(redis_url, key_prefix):
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, expiry=5)
    yield layer
    layer.flush()
    layer.close()


@pytest.fixture
def sharded(redis_url, key_prefix):
    base = redis_url.rsplit("/", 1)[0]
    layer = RedisChannelLayer(hosts=[f"{base}/0", f"{base}/1"], prefix=key_prefix, expiry=5)
    yield layer
    layer.flush()
    layer.close()


def _disconnect(reply_channel):
    return {"reply_channel": reply_channel, "path": "/", "order": 0, "code": 1006}


def _drain(layer, channel):
    got = []
    while True:
        batch = layer.receive_batch([channel], 100)
        if not batch:
            return [m for _, m in got]
        got += batch


def test_a_sweep_interrupted_after_taking_the_dead_holder_is_finished_by_the_next(layer):
    layer.lease_renew("crash!", 0.1)
    for i in range(3):
        layer.lease_track("crash!", f"crash!{i}", "crash.disconnect", _disconnect(f"crash!{i}"))
    time.sleep(0.2)
    # The first step of a sweep, as a sweeper killed right after it would leave things.
    shard = layer.shards[0]
    assert shard.evalsha(LEASE_SWEEP, list(layer.keys.lease_keys(0)), (layer.prefix, 100)) == [b"crash!"]
    assert _drain(layer, "crash.disconnect") == []
    assert layer.lease_sweep("another-sweeper", 5) == []  # nothing left to take, but the rest is finished
    assert layer.last_sweep == {"crash!": 3}
    assert sorted(m["reply_channel"] for m in _drain(layer, "crash.disconnect")) == [f"crash!{i}" for i in range(3)]
    layer.lease_sweep("another-sweeper", 5)
    assert _drain(layer, "crash.disconnect") == []


def _channel_on_other_shard(layer, holder):
    holder_shard = layer.keys.lease_shard(holder)
    for i in range(100):
        channel = f"remote{i}.disconnect"
        if layer.keys.send_target(channel).shard != holder_shard:
            return channel
    raise AssertionError("no channel on the other shard")


def test_release_and_sweep_reach_a_channel_on_another_shard_than_the_holder(sharded):
    holder = "far!"
    channel = _channel_on_other_shard(sharded, holder)
    sharded.lease_renew(holder, 0.2)
    sharded.lease_track(holder, "far!a", channel, _disconnect("far!a"))
    sharded.lease_track(holder, "far!b", channel, _disconnect("far!b"))
    assert sharded.lease_release(holder, "far!a", channel, dict(_disconnect("far!a"), code=1000))
    assert not sharded.lease_release(holder, "far!a", channel, _disconnect("far!a"))
    time.sleep(0.3)
    assert sharded.lease_sweep("sweeper", 5) == [holder]
    got = _drain(sharded, channel)
    assert [(m["reply_channel"], m["code"]) for m in got] == [("far!a", 1000), ("far!b", 1006)]


def test_a_sweep_of_more_connections_than_the_channel_capacity_sends_them_all(layer):
    layer.lease_renew("full!", 0.1)
    for i in range(150):
        layer.lease_track("full!", f"full!{i}", "full.disconnect", _disconnect(f"full!{i}"))
    time.sleep(0.2)
    assert layer.lease_sweep("sweeper", 5) == ["full!"]
    assert layer.last_sweep == {"full!": 150}
    assert len(_drain(layer, "full.disconnect")) == 150  # capacity is 100
