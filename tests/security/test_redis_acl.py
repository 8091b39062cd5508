"""The Redis layer as an ACL user that may only touch its own prefix and run the commands it needs.

`LAYER_COMMANDS` is the minimal command list (found with `INFO commandstats`
after `layer_workload.exercise`, which makes every kind of call the layer
makes; the last test fails when the layer starts using a command not in it).
With `-@all` plus exactly these commands and `~<prefix>*` the layer works
on two shards; a key outside the prefix, or a command outside the list, is
refused (so the ACL really applies).
"""

from __future__ import annotations

import logging

import pytest
import redis

from channels_core.layers import RedisChannelLayer
from channels_core.layers.errors import LayerConfigurationError
from tests.support.redis_server import RedisServer

from .layer_workload import exercise

PREFIX = "asgi-test:"
PASSWORD = "layer-password"

# The commands the layer runs, directly or from its Lua scripts (Redis checks both).
LAYER_COMMANDS = [
    # connecting: clock and version (INFO: without it the version is unknown and BLMPOP is not used); scripts
    "time", "info", "script|load", "evalsha",
    # blocking reads; CLIENT ID / UNBLOCK cancel the reads still waiting on the other shards
    "blpop", "blmpop", "client|id", "client|unblock",
    # queues (from the scripts)
    "rpush", "lpop", "llen", "lindex", "expire", "del", "unlink", "get", "set",
    # groups, capacity rules, ordering (hexists), statistics and leases (from the scripts)
    "zadd", "zrem", "zrange", "zrangebyscore", "zremrangebyscore", "zcard", "zscore",
    "hset", "hget", "hdel", "hexists", "hincrby", "hgetall", "hkeys", "hlen",
    # scripts read every undeclared key before writing (Redis Cluster migrations)
    "exists",
    # flush; the status command and the operations page (the `inspection` extension)
    "scan", "zcount",
    # presence (the lease sweep reads members' sets even when no one joined), group history, at-least-once
    "smembers", "sadd", "srem", "xadd", "xrange", "hmget", "pexpire", "lpush", "ltrim",
]  # fmt: skip


def acl_setuser(client: redis.Redis, user: str, rules: list[str]) -> None:
    client.execute_command("ACL", "SETUSER", user, "reset", "on", f">{PASSWORD}", *rules)


@pytest.fixture
def acl_redis():
    servers = [RedisServer(), RedisServer()]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.cleanup()


def layer_as(user: str, servers: list[RedisServer], prefix: str = PREFIX) -> RedisChannelLayer:
    hosts = [f"redis://{user}:{PASSWORD}@127.0.0.1:{s.port}/0" for s in servers]
    return RedisChannelLayer(hosts=hosts, prefix=prefix, blocking_timeout=1, capacity=20)


def minimal_rules(prefix: str = PREFIX) -> list[str]:
    return [f"~{prefix}*", "resetchannels", "-@all", *(f"+{c}" for c in LAYER_COMMANDS)]


def test_the_layer_works_with_only_its_prefix_and_the_minimal_commands(acl_redis):
    for server in acl_redis:
        admin = server.client()
        acl_setuser(admin, "chan", minimal_rules())
        admin.close()
    layer = layer_as("chan", acl_redis)
    try:
        exercise(layer)
    finally:
        layer.close()
    for server in acl_redis:
        admin = server.client()
        denied = [
            e
            for e in admin.execute_command("ACL", "LOG")
            if dict(zip(e[::2], e[1::2], strict=False)).get(b"username") == b"chan"
        ]
        assert denied == [], denied  # nothing was refused along the way
        admin.close()


def test_keys_outside_the_prefix_and_other_commands_are_refused(acl_redis):
    for server in acl_redis:
        admin = server.client()
        acl_setuser(admin, "chan", minimal_rules())
        admin.close()
    server = acl_redis[0]
    client = redis.Redis(host="127.0.0.1", port=server.port, username="chan", password=PASSWORD)
    try:
        client.set(f"{PREFIX}mine", b"1")
        for forbidden in (lambda: client.set("other-app:key", b"1"), lambda: client.get("session:abc"),
                          lambda: client.rpush("asgi:http.request", b"x"), lambda: client.keys("*"),
                          lambda: client.flushall(), lambda: client.config_get("*"),
                          lambda: client.eval("return redis.call('GET', KEYS[1])", 1, "other-app:key")):  # fmt: skip
            with pytest.raises(redis.exceptions.NoPermissionError):
                forbidden()
    finally:
        client.close()
    # The layer itself on a prefix the user may not touch: a LayerConfigurationError (a worker stops with it)
    # naming the ACL, for sends and receives alike; it used to be redis-py's NoPermissionError.
    layer = layer_as("chan", acl_redis, prefix="other-prefix:")
    try:
        for call in (lambda: layer.send("x.ch", {"n": 1}), lambda: layer.receive(["x.ch"], block=True)):
            with pytest.raises(LayerConfigurationError, match="ACL needs the keys under the layer's prefix"):
                call()
    finally:
        layer.close()


def test_the_commands_the_layer_uses_are_all_in_the_minimal_list(acl_redis):
    """With every command allowed, INFO commandstats after the workload lists only commands of LAYER_COMMANDS."""
    for server in acl_redis:
        admin = server.client()
        acl_setuser(admin, "chan", [f"~{PREFIX}*", "+@all"])
        admin.config_resetstat()
        admin.close()
    layer = layer_as("chan", acl_redis)
    try:
        exercise(layer)
    finally:
        layer.close()
    used: set[str] = set()
    for server in acl_redis:
        admin = server.client()
        stats = admin.info("commandstats")
        admin.close()
        used |= {name.removeprefix("cmdstat_") for name in stats}
    used -= {"config|resetstat", "acl|setuser", "info", "client|setinfo", "hello", "auth", "acl|log"}
    print("commands the layer used:", " ".join(sorted(used)))
    missing = used - set(LAYER_COMMANDS)
    assert not missing, f"the layer uses {sorted(missing)}: add them to LAYER_COMMANDS and the ACL recipe"


def test_the_common_all_but_dangerous_recipe_works_and_says_what_to_add(acl_redis, caplog):
    """`+@all -@dangerous` forbids CLIENT UNBLOCK: blocking reads on several servers still work (each
    cancel reconnects instead), with one error per server naming the missing permission; before, the
    refusal raised out of receive()."""
    for server in acl_redis:
        admin = server.client()
        acl_setuser(admin, "chan", [f"~{PREFIX}*", "&*", "+@all", "-@dangerous"])
        admin.close()
    layer = layer_as("chan", acl_redis)
    try:
        with caplog.at_level(logging.ERROR, "channels_core.layers.redis"):
            exercise(layer)
    finally:
        layer.close()
    refusals = [r for r in caplog.records if "+client|unblock" in r.getMessage()]
    assert 1 <= len(refusals) <= len(acl_redis), caplog.text
