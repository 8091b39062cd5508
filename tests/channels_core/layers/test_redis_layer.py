"""Redis-only behaviour: configuration, keyspace hygiene, sharding, encryption, bad data."""

from __future__ import annotations

import fnmatch
import logging
import re

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels_core.layers import RedisChannelLayer
from channels_core.layers.capacity import glob_to_lua
from channels_core.layers.redis.hosts import parse_hosts
from channels_core.layers.redis.sharding import HashRing


@pytest.fixture
def layer(redis_url, key_prefix):
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix)
    yield layer
    layer.flush()
    layer.close()


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _keys(client, prefix):
    return list(client.scan_iter(match=prefix + "*", count=1000))


# -- configuration ---------------------------------------------------------------


def test_hosts_default_to_redis_url(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://:secret@cache.example:6380/2")
    (host,) = parse_hosts(None)
    assert host.label == "redis://cache.example:6380/2"
    assert host.connection_kwargs["password"] == "secret"


def test_hosts_without_redis_url_use_localhost(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert parse_hosts(None)[0].label == "redis://localhost:6379/0"


def test_hosts_accept_urls_pairs_and_dicts():
    hosts = parse_hosts(
        ["rediss://secure.example:6390/0", ("10.0.0.1", 6379), {"address": "redis://h3:1/4", "password": "p"}],
        {"socket_timeout": 3},
    )
    assert [h.label for h in hosts] == ["rediss://secure.example:6390/0", "redis://10.0.0.1:6379/0", "redis://h3:1/4"]
    assert "SSL" in hosts[0].connection_class.__name__
    assert hosts[1].connection_kwargs["socket_timeout"] == 3
    assert hosts[2].connection_kwargs["password"] == "p"


@pytest.mark.parametrize(
    "hosts, message",
    [
        ("localhost", "not a URL"),
        ([], "non-empty"),
        ([object()], "must be a URL"),
        (["redis://a:1", "redis://a:1"], "twice"),
    ],
)
def test_bad_hosts_are_clear_errors(hosts, message):
    with pytest.raises(ValueError, match=message):
        RedisChannelLayer(hosts=hosts)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"capacity": 0}, "capacity"),
        ({"channel_capacity": {"x.*": -1}}, "channel_capacity"),
        ({"channel_capacity": {3: 10}}, "glob strings or compiled regexes"),
        ({"expiry": 0}, "expiry"),
        ({"prefix": ""}, "prefix"),
        ({"symmetric_encryption_keys": "one-key"}, "list of keys"),
    ],
)
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        RedisChannelLayer(**options)


# -- keyspace ----------------------------------------------------------------------


def test_keyspace_stays_flat_after_10000_send_receive_pairs(layer, client, key_prefix):
    layer.send("flat.warmup", {"n": 0})
    layer.receive(["flat.warmup"])
    before = len(_keys(client, key_prefix))
    for i in range(10_000):
        channel = ("flat.a", f"flat.p!{i % 7}", layer.new_channel("flat.r?"))[i % 3]
        layer.send(channel, {"n": i})
        got_channel, message = layer.receive([channel if "!" not in channel else "flat.p!"])
        assert (got_channel, message["n"]) == (channel, i)
    after = _keys(client, key_prefix)
    # Only the statistics hashes remain: one per channel name, with "?" names folded.
    assert len(after) - before <= 3, sorted(after)
    assert all(b":meta:" in key for key in after)


def test_every_key_has_a_ttl(layer, client, key_prefix):
    layer.send("ttl.a", {})
    layer.send("ttl.p!x", {})
    layer.group_add("ttl_group", "ttl.a")
    for key in _keys(client, key_prefix):
        assert client.ttl(key) > 0, key


def test_flush_uses_scan_and_leaves_other_prefixes_alone(layer, client, key_prefix):
    other = key_prefix.rstrip(":") + "x:other"
    client.set(other, b"keep")
    pipe = client.pipeline(transaction=False)
    for i in range(20_000):
        pipe.rpush(f"{key_prefix}bulk{i}", b"x")
    pipe.execute()
    client.config_resetstat()
    layer.flush()
    stats = client.info("commandstats")
    assert "cmdstat_keys" not in stats
    assert _keys(client, key_prefix) == []
    assert client.get(other) == b"keep"
    client.delete(other)


# -- sharding ----------------------------------------------------------------------


def test_hash_ring_moves_about_one_nth_of_names_when_a_host_is_added():
    names = [f"chat.room{i}" for i in range(20_000)]
    four = HashRing(["a", "b", "c", "d"])
    five = HashRing(["a", "b", "c", "d", "e"])
    nodes4 = ["abcd"[four.get(n)] for n in names]
    nodes5 = ["abcde"[five.get(n)] for n in names]
    moved = sum(a != b for a, b in zip(nodes4, nodes5, strict=False))
    assert 0.12 < moved / len(names) < 0.30  # ideal: 1/5
    assert all(b == "e" for a, b in zip(nodes4, nodes5, strict=False) if a != b)
    counts = [nodes5.count(x) for x in "abcde"]
    assert max(counts) < 1.35 * min(counts)


def test_hash_ring_ignores_host_order():
    a = HashRing(["redis://x:1/0", "redis://y:1/0"])
    b = HashRing(["redis://y:1/0", "redis://x:1/0"])
    labels_a = ["xy"[a.get(f"n{i}")] for i in range(500)]
    labels_b = ["yx"[b.get(f"n{i}")] for i in range(500)]
    assert labels_a == labels_b


# -- bad data on the wire ------------------------------------------------------------


def test_garbage_on_a_channel_is_logged_and_skipped(layer, client, key_prefix, caplog):
    client.rpush(f"{key_prefix}junk.ch", b"not a layer element at all")
    client.rpush(f"{key_prefix}junk.ch", b"99999999999999\n\xc1\xc1garbage msgpack")
    layer.send("junk.ch", {"ok": True})
    with caplog.at_level(logging.ERROR, logger="channels_core.layers.redis"):
        assert layer.receive(["junk.ch"]) == (None, None)  # the first junk element
        assert layer.receive(["junk.ch"]) == (None, None)  # undecodable payload
        assert layer.receive(["junk.ch"]) == ("junk.ch", {"ok": True})
    # Logged once per channel (rate-limited, see test_redis_garbage.py), every drop counted.
    assert len([r for r in caplog.records if "junk.ch" in r.getMessage()]) == 1
    assert layer.decoder.drops.counts == {"junk.ch": 2}


def test_key_rotation(redis_url, key_prefix, caplog):
    old = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, symmetric_encryption_keys=["old-key"])
    rotated = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, symmetric_encryption_keys=["new-key", "old-key"])
    new_only = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, symmetric_encryption_keys=["new-key"])
    try:
        old.send("rot.ch", {"from": "old"})
        assert rotated.receive(["rot.ch"]) == ("rot.ch", {"from": "old"})
        rotated.send("rot.ch", {"from": "rotated"})
        assert new_only.receive(["rot.ch"]) == ("rot.ch", {"from": "rotated"})
        old.send("rot.ch", {"from": "old again"})
        with caplog.at_level(logging.ERROR, logger="channels_core.layers.redis"):
            assert new_only.receive(["rot.ch"]) == (None, None)
        assert "InvalidToken" in caplog.text
    finally:
        old.flush()
        for layer in (old, rotated, new_only):
            layer.close()


def test_encrypted_payload_is_not_readable_in_redis(redis_url, key_prefix, client):
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, symmetric_encryption_keys=["k"])
    try:
        layer.send("secret.ch", {"card": "4111-1111"})
        (element,) = client.lrange(f"{key_prefix}secret.ch", 0, -1)
        assert b"4111" not in element
    finally:
        layer.flush()
        layer.close()


# -- capacity rules ------------------------------------------------------------------


def test_channel_capacity_globs_and_regexes(redis_url, key_prefix):
    layer = RedisChannelLayer(
        hosts=[redis_url],
        prefix=key_prefix,
        capacity=2,
        channel_capacity={"cap.big*": 4, re.compile(r"^cap\.re\d+$"): 3, "cap.proc!*": 5},
    )
    try:
        for channel, capacity in [("cap.bigger", 4), ("cap.re7", 3), ("cap.proc!a", 5), ("cap.other", 2)]:
            assert layer.get_capacity(channel) == capacity
            for _ in range(capacity):
                layer.send(channel, {})
            with pytest.raises(layer.ChannelFull):
                layer.send(channel, {})
    finally:
        layer.flush()
        layer.close()


@pytest.mark.parametrize("rule", ["grp.big*", re.compile(r"grp\.b.g")])
def test_send_group_applies_capacity_rules_server_side(redis_url, key_prefix, rule):
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, capacity=1, channel_capacity={rule: 3})
    try:
        layer.group_add("g", "grp.big")
        layer.group_add("g", "grp.small")
        for _ in range(4):
            layer.send_group("g", {})
        assert len(layer.receive_batch(["grp.big"], 10)) == 3
        assert len(layer.receive_batch(["grp.small"], 10)) == 1
        assert layer.global_statistics()["channel_full_count"] == 1 + 3
    finally:
        layer.flush()
        layer.close()


_GLOB_CHARS = st.sampled_from(list("ab.-_!?") + ["*", "?", "[ab]", "[!a]", "[a-c]"])
_NAMES = st.text(alphabet="abc.-_!?", min_size=0, max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(glob=st.lists(_GLOB_CHARS, min_size=1, max_size=6).map("".join), name=_NAMES)
def test_lua_glob_translation_matches_fnmatch(client, glob, name):
    lua = "if string.find(ARGV[1], ARGV[2]) then return 1 else return 0 end"
    assert client.eval(lua, 0, name, glob_to_lua(glob)) == int(fnmatch.fnmatchcase(name, glob))


def test_works_on_a_server_that_disables_info(key_prefix):
    from tests.support.redis_server import RedisServer

    with RedisServer(extra_args=["--rename-command", "INFO", ""]) as server:
        with pytest.raises(redis.ResponseError):
            server.client().info()
        layer = RedisChannelLayer(hosts=[server.url], prefix=key_prefix)
        try:
            layer.send("noinfo.ch", {"ok": True})
            assert layer.receive(["noinfo.ch"], block=True) == ("noinfo.ch", {"ok": True})
        finally:
            layer.close()


def test_blocking_batch_read_is_a_single_blmpop(private_redis):
    # A server of its own: the command counts are the whole server's.
    layer = RedisChannelLayer(hosts=[private_redis.url], prefix="bm:")
    client = private_redis.client()
    try:
        layer.send_many("bm.ch", [{"i": i} for i in range(5)])
        client.config_resetstat()
        got = layer.receive_batch(["bm.ch"], 10, block=True)
        assert [m["i"] for _, m in got] == list(range(5))
        stats = client.info("commandstats")
        assert stats["cmdstat_blmpop"]["calls"] == 1
        assert "cmdstat_evalsha" not in stats and "cmdstat_blpop" not in stats
    finally:
        layer.close()
        client.close()


def test_blocking_batch_read_buffers_a_fan_out_beyond_its_limit(layer):
    members = [f"bmf!s{i}" for i in range(30)]
    for member in members:
        layer.group_add("bmf", member)
    layer.send_group("bmf", {"v": 1})
    first = layer.receive_batch(["bmf!"], 10, block=True)
    rest = layer.receive_batch(["bmf!"], 100, block=True)
    assert len(first) == 10 and len(rest) == 20
    assert sorted(channel for channel, _ in first + rest) == sorted(members)
