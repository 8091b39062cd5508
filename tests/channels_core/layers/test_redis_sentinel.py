"""Redis Sentinel: the three spellings, a demoted master's READONLY, the event receiver, fork.

(Leases and the rest of the layer contract: TestRedisLayerSentinel in test_conformance.py.)

Against a real master, replica and three sentinels (`tests/support/redis_sentinel.py`),
shared by the whole run; the failover itself is in test_redis_sentinel_failover.py.
"""

from __future__ import annotations

import os

import pytest
import redis

from channels_core.layers import (
    LayerConfigurationError,
    LayerConnectionError,
    RedisChannelLayer,
    RedisSentinelChannelLayer,
)
from channels_core.layers.redis.sentinel import SentinelSource
from tests.support.redis_sentinel import MASTER_NAME, shared_setup

from .test_event_receiver import read_when_ready


@pytest.fixture
def setup():
    return shared_setup()


def _roundtrip(layer: RedisChannelLayer) -> None:
    try:
        layer.flush()
        layer.send("sentinel.test", {"n": 1})
        assert layer.receive(["sentinel.test"], block=True) == ("sentinel.test", {"n": 1})
        layer.group_add("g", "proc!a")
        layer.send_group("g", {"to": "group"})
        assert layer.receive(["proc!"], block=True) == ("proc!a", {"to": "group"})
    finally:
        layer.flush()
        layer.close()


# -- the spellings ---------------------------------------------------------------------------


def test_the_channels_redis_4_dict(setup, key_prefix):
    layer = RedisChannelLayer(
        hosts=[
            {
                "sentinels": setup.sentinel_addresses,
                "master_name": MASTER_NAME,
                "sentinel_kwargs": {"socket_timeout": 0.5},
                "db": 1,
            }
        ],
        prefix=key_prefix,
    )
    source = layer.hosts[0]
    assert isinstance(source, SentinelSource)
    assert source.db == 1
    _roundtrip(layer)
    # The master was asked of the sentinels, and the keys are in db 1 of the master.
    assert source.address == f"master 'mymaster' (now 127.0.0.1:{setup.current_master_port()})"


def test_the_url_in_hosts_and_in_redis_url(setup, key_prefix, monkeypatch):
    _roundtrip(RedisChannelLayer(hosts=[setup.url(2)], prefix=key_prefix))
    monkeypatch.setenv("REDIS_URL", setup.url(2))
    layer = RedisChannelLayer(prefix=key_prefix)
    assert layer.hosts[0].label == setup.url(2) and layer.hosts[0].source == "$REDIS_URL"
    _roundtrip(layer)


def test_the_asgi_redis_1_layer_with_its_positional_order(setup, key_prefix):
    layer = RedisSentinelChannelLayer(
        60, setup.sentinel_addresses, key_prefix, 86400, 100, None, None, None, {"db": 3}, [MASTER_NAME], 0
    )
    assert len(layer.shards) == 1 and layer.services == [MASTER_NAME] and layer.hosts[0].db == 3
    _roundtrip(layer)


def test_several_services_are_several_shards_and_several_dicts_too():
    sentinels = [("127.0.0.1", 1), ("127.0.0.1", 2)]
    layer = RedisSentinelChannelLayer(hosts=sentinels, services=["a", "b"], sentinel_refresh_interval=5)
    assert [h.label for h in layer.hosts] == [
        "redis+sentinel://127.0.0.1:1,127.0.0.1:2/a/0",
        "redis+sentinel://127.0.0.1:1,127.0.0.1:2/b/0",
    ]
    assert layer.hosts[0].refresh_interval == 5
    dicts = RedisChannelLayer(hosts=[{"sentinels": sentinels, "master_name": n} for n in ("a", "b")])
    assert [h.label for h in dicts.hosts] == [h.label for h in layer.hosts]
    # A shard is named by its master on the hash ring: listing, adding or replacing sentinels moves nothing.
    names = [f"channel{i}" for i in range(200)]
    placed = [layer.keys.shard_of(n).index for n in names]
    for other in (sentinels[::-1], [*sentinels, ("127.0.0.1", 3)], [("10.0.0.1", 26379)]):
        moved = RedisSentinelChannelLayer(hosts=other, services=["a", "b"])
        assert [moved.keys.shard_of(n).index for n in names] == placed
    assert len(set(placed)) == 2
    # Two Sentinel sets that each call their master "mymaster" are still two shards.
    two = RedisChannelLayer(hosts=[{"sentinels": [s], "master_name": "mymaster"} for s in sentinels])
    assert len({two.keys.shard_of(n).index for n in names}) == 2


def test_url_forms():
    (source,) = RedisChannelLayer(
        hosts=["redis+sentinel://:s3cret@h1:26379,h2/my%20master/4?sentinel_password=x&socket_timeout=2"]
    ).hosts
    assert source.sentinel_addresses == [("h1", 26379), ("h2", 26379)]
    assert source.master_name == "my master" and source.db == 4
    assert source.connection_kwargs["password"] == "s3cret" and source.connection_kwargs["socket_timeout"] == 2
    assert "s3cret" not in source.label
    assert RedisChannelLayer(hosts=["rediss+sentinel://h1:1/m"]).hosts[0].tls


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        (["redis+sentinel://h1:26379"], "must end with /master_name"),
        (["redis+sentinel://h1:26379/m/x"], "must end with /master_name"),
        (["redis+sentinel:///m"], "names no sentinel"),
        (["redis+sentinel://h1:port/m"], "is not host:port"),
        (["redis+sentinel://:pw@h1:1/m?nope=1"], "unknown option 'nope'"),
        (["sentinel://:pw@h1:26379;sentinel://h2:26379"], "write a Sentinel URL as 'redis+sentinel://"),
        ([{"sentinels": [("h", 1)]}], "needs a master_name"),
        ([{"sentinels": [], "master_name": "m"}], "lists no sentinels"),
        ([{"sentinels": "h:1", "master_name": "m"}], "must be a list of"),
        ([{"sentinels": [("h", 1, 2)], "master_name": "m"}], "must be a (host, port) pair"),
        ([{"sentinels": [("h", 1)], "master_name": "m", "sokcet_timeout": 1}], "sokcet_timeout"),
        ([{"sentinels": [("h", 1)], "master_name": "m", "ssl_ca_certs": "x"}], "without ssl=True"),
    ],
)
def test_bad_settings_are_clear_errors(hosts, message):
    with pytest.raises(ValueError, match=None) as info:
        RedisChannelLayer(hosts=hosts)
    assert message in str(info.value)
    assert "pw" not in str(info.value)


def test_services_are_required():
    with pytest.raises(ValueError, match="needs services"):
        RedisSentinelChannelLayer(hosts=[("h", 1)])


def test_no_sentinel_answers_is_a_connection_error_not_a_hang():
    layer = RedisChannelLayer(hosts=["redis+sentinel://127.0.0.1:1,127.0.0.1:2/m"])
    try:
        with pytest.raises(LayerConnectionError, match="No master found"):
            layer.send("x", {})
    finally:
        layer.close()


def test_a_master_name_the_sentinels_do_not_monitor_is_a_configuration_error(setup):
    layer = RedisChannelLayer(hosts=[setup.url().replace("/mymaster/", "/mymastr/")])
    try:
        with pytest.raises(LayerConfigurationError, match=r"no master named 'mymastr'; they know \['mymaster'\]"):
            layer.send("x", {})
        with pytest.raises(LayerConfigurationError):
            layer.receive(["x"], block=True)  # not retried until the timeout: waiting cannot help
    finally:
        layer.close()


# -- following the master --------------------------------------------------------------------


def test_a_connection_to_a_demoted_master_is_dropped_and_the_next_asks_again(setup, key_prefix):
    """A replica answers writes with READONLY: what a master demoted by a failover does."""
    layer = RedisChannelLayer(hosts=[setup.url()], prefix=key_prefix)
    source = layer.hosts[0]
    try:
        source.refresh_interval = 3600
        master = setup.master_server()
        replica = setup.replica if master is setup.master else setup.master
        source._cached = (("127.0.0.1", replica.port), 1e18)  # as if the sentinels had named the replica
        with pytest.raises(LayerConnectionError, match="no longer the master"):
            layer.send("x", {"n": 1})
        assert source._cached is None, "READONLY did not forget the address"
        layer.send("x", {"n": 2})  # the next connection asked the sentinels
        assert layer.receive(["x"]) == ("x", {"n": 2})
        assert source.address.endswith(f":{master.port})")
    finally:
        layer.flush()
        layer.close()


def test_the_event_receiver_reads_from_the_master(setup, key_prefix):
    layer = RedisChannelLayer(hosts=[setup.url()], prefix=key_prefix, blocking_timeout=1)
    receiver = layer.event_receiver(["proc!"], 100)
    receiver.start()
    try:
        layer.send_many("proc!a", [{"n": i} for i in range(10)])
        got = []
        while len(got) < 10:
            batch = read_when_ready(receiver)
            assert batch, "nothing arrived"
            got += batch
        assert got == [("proc!a", {"n": i}) for i in range(10)]
        master = setup.master_server().client()
        try:
            peers = [c for c in master.client_list() if c.get("cmd") in ("blpop", "blmpop")]
        finally:
            master.close()
        assert peers, "the receiver's pop is not waiting on the master"
    finally:
        receiver.close()
        layer.flush()
        layer.close()


def test_sentinels_are_asked_once_per_connection_not_per_command(setup, key_prefix):
    layer = RedisChannelLayer(hosts=[setup.url()], prefix=key_prefix)
    try:
        sentinel = setup.sentinels[0].client()
        before = _sentinel_commands(sentinel)
        for i in range(50):
            layer.send("count", {"n": i})
        asked = _sentinel_commands(sentinel) - before
        sentinel.close()
        assert asked <= 3, f"the sentinels were asked {asked} times for 50 sends"
    finally:
        layer.flush()
        layer.close()


def _sentinel_commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k.startswith("cmdstat_sentinel"))


def test_a_forked_child_finds_the_master_on_its_own_connections(setup, key_prefix):
    """runworker --processes forks after the layer was used: the child must not share the parent's sockets."""
    layer = RedisChannelLayer(hosts=[setup.url()], prefix=key_prefix)
    try:
        layer.send("before.fork", {"n": 0})
        pid = os.fork()
        if pid == 0:  # the child: exit code 0 only if its own send and receive work
            code = 1
            try:
                layer.send("from.child", {"n": 1})
                code = 0 if layer.receive(["before.fork"]) == ("before.fork", {"n": 0}) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert layer.receive(["from.child"]) == ("from.child", {"n": 1})
    finally:
        layer.flush()
        layer.close()
