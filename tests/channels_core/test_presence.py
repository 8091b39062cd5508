"""Presence (`Group.join`, `Group.presence`, `Group.discard`; the layers' `presence` extension).

On the in-memory layer, one Redis, two Redis shards and Redis Cluster. The
whole-stack test (an interface server SIGKILLed with members present) is
tests/stack/test_presence_stack.py.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from channels_core.channel import Channel, Group
from channels_core.layers import InMemoryChannelLayer, RedisChannelLayer
from channels_core.layers.contract import supports
from channels_core.layers.presence import Member, PresenceNotSupported, member_id
from channels_core.test import make_message
from tests.support.redis_cluster import shared_setup as cluster_setup

SETTINGS = {"expiry": 5, "group_expiry": 60}


def _redis(prefix: str, hosts: list[str], **options) -> RedisChannelLayer:
    layer = RedisChannelLayer(hosts=hosts, prefix=prefix, **{**SETTINGS, **options})
    layer.flush()
    return layer


@pytest.fixture(params=["inmemory", "redis", "redis-encrypted", "redis-two-shards", "ipc"])
def layer(request, redis_url, key_prefix):
    if request.param == "inmemory":
        layer = InMemoryChannelLayer(**SETTINGS)
    elif request.param == "redis-encrypted":  # records go through the serializer: encrypted at rest too
        layer = _redis(key_prefix, [redis_url], symmetric_encryption_keys=["a-key-of-enough-entropy"])
    elif request.param == "ipc":
        pytest.importorskip("posix_ipc")
        from channels_core.layers.ipc.layer import IPCChannelLayer, shared_objects

        prefix = "tpres" + uuid.uuid4().hex[:10]
        layer = IPCChannelLayer(prefix=prefix, **SETTINGS)
        yield layer
        layer.flush()
        layer.close()
        assert shared_objects(prefix) == []
        return
    elif request.param == "redis":
        layer = _redis(key_prefix, [redis_url])
    else:
        base = redis_url.rsplit("/", 1)[0]
        layer = _redis(key_prefix, [f"{base}/0", f"{base}/1"])
    yield layer
    layer.flush()
    layer.close()


def _texts(layer, channel: str) -> list[dict]:
    """The JSON bodies of every message waiting on `channel` (a "server!" channel is read at its prefix)."""
    queue = channel[: channel.index("!") + 1] if "!" in channel else channel
    got = []
    while True:
        batch = layer.receive_batch([queue], 100)
        if not batch:
            return got
        got += [json.loads(m["text"]) for name, m in batch if name == channel]


class FakeUser:
    def __init__(self, pk, authenticated=True):
        self.pk = pk
        self.is_authenticated = authenticated


def test_which_layers_list_presence():
    from channels_core.layers.ipc.layer import IPCChannelLayer
    from channels_core.layers.rabbitmq.layer import RabbitMQChannelLayer

    for layer_class in (InMemoryChannelLayer, RedisChannelLayer, IPCChannelLayer):
        assert "presence" in layer_class.extensions, layer_class
    assert "presence" not in RabbitMQChannelLayer.extensions


def test_join_records_user_info_and_join_time_and_adds_to_the_group(layer):
    group = Group("room", channel_layer=layer)
    before = time.time()
    joined = group.join("srv.a!one", user=7, info={"name": "Ann", "tags": ["x"]})
    group.join(Channel("plain?two", channel_layer=layer), user="bob")
    group.add("srv.a!three")  # a plain member: in the group, not in its presence
    members = group.presence()
    assert [m.channel for m in members] == ["srv.a!one", "plain?two"]
    first = members[0]
    assert isinstance(first, Member)
    assert (first.user, first.info, first.joined) == (7, {"name": "Ann", "tags": ["x"]}, joined)
    assert abs(joined - before) < 5  # the layer's clock (Redis's for Redis), close to ours
    assert members[1].user == "bob" and members[1].info is None
    assert sorted(group.channel_layer_members()) == ["plain?two", "srv.a!one", "srv.a!three"]


def test_discard_removes_membership_and_record(layer):
    group = Group("room", channel_layer=layer)
    group.join("srv.a!one", user=1)
    group.join("srv.a!two", user=2)
    group.discard("srv.a!one")
    assert [m.channel for m in group.presence()] == ["srv.a!two"]
    assert group.channel_layer_members() == ["srv.a!two"]
    assert layer.presence_leave("room", "srv.a!one") is False  # already gone
    group.discard("srv.a!two")
    assert group.presence() == [] and group.channel_layer_members() == []


def test_a_second_join_replaces_the_record(layer):
    group = Group("room", channel_layer=layer)
    group.join("srv.a!one", user=1, info={"v": 1})
    group.join("srv.a!one", user=1, info={"v": 2})
    assert [(m.channel, m.info) for m in group.presence()] == [("srv.a!one", {"v": 2})]


def test_events_go_to_the_other_members_never_to_the_member_itself(layer):
    group = Group("room", channel_layer=layer)
    group.join("srv.a!watcher")  # joined without events: sends none, hears the others'
    group.join("srv.b!ann", user=1, info={"name": "Ann"}, events=True)
    group.join("srv.b!bob", user=2, events=True)
    group.discard("srv.b!ann")
    watcher = _texts(layer, "srv.a!watcher")
    assert [(e["presence"], e["user"]) for e in watcher] == [("join", 1), ("join", 2), ("leave", 1)]
    assert watcher[0] == {
        "presence": "join",
        "group": "room",
        "member": member_id("srv.b!ann"),
        "user": 1,
        "info": {"name": "Ann"},
        "joined": watcher[0]["joined"],
    }
    assert "srv.b!ann" not in json.dumps(watcher)  # other clients never see a reply channel
    # Ann heard Bob's join, not her own join or leave; Bob heard Ann leave, not his own join.
    heard: dict[str, list] = {}
    for name, message in layer.receive_batch(["srv.b!"], 100):
        event = json.loads(message["text"])
        heard.setdefault(name, []).append((event["presence"], event["user"]))
    assert heard == {"srv.b!ann": [("join", 2)], "srv.b!bob": [("leave", 1)]}


def test_no_events_unless_asked(layer):
    group = Group("room", channel_layer=layer)
    group.join("srv.a!watcher")
    group.join("srv.b!ann", user=1)
    group.discard("srv.b!ann")
    assert _texts(layer, "srv.a!watcher") == []


def test_join_from_a_consumer_message_records_its_reply_channel_and_user(layer):
    group = Group("room", channel_layer=layer)
    message = make_message("websocket.connect", layer=layer, reply_channel="srv.a!sock1")
    message.user = FakeUser(42)
    group.join(message, info={"page": "/"})
    anonymous = make_message("websocket.connect", layer=layer, reply_channel="srv.a!sock2")
    anonymous.user = FakeUser(None, authenticated=False)
    group.join(anonymous)
    no_user = make_message("websocket.connect", layer=layer, reply_channel="srv.a!sock3")
    group.join(no_user, user="given")
    assert [(m.channel, m.user) for m in group.presence()] == [
        ("srv.a!sock1", 42),
        ("srv.a!sock2", None),
        ("srv.a!sock3", "given"),
    ]


@pytest.mark.parametrize(
    ("user", "info", "events", "error"),
    [
        (1.5, None, False, "user must be"),
        (True, None, False, "user must be"),
        (object(), None, False, "user must be"),
        (1, ["not", "a", "dict"], False, "info must be a dict"),
        (1, {"when": b"bytes"}, True, "JSON-serializable"),
    ],
)
def test_bad_users_and_info_are_refused(layer, user, info, events, error):
    with pytest.raises(TypeError, match=error):
        Group("room", channel_layer=layer).join("srv.a!one", user=user, info=info, events=events)
    assert layer.presence_members("room") == []


def test_members_of_a_server_whose_lease_expired_are_hidden_then_swept_with_leave_events(layer):
    group = Group("room", channel_layer=layer)
    layer.lease_renew("srv.dead!", 0.3)
    layer.lease_renew("srv.live!", 30)
    group.join("srv.live!watcher")
    group.join("plain?other", user=9, events=True)  # no lease behind it: never swept
    for i in range(3):
        group.join(f"srv.dead!s{i}", user=i, events=True)
    assert len(group.presence()) == 5
    _texts(layer, "srv.live!watcher")  # the join events
    time.sleep(0.4)
    # Expired, not swept yet: already left out, still recorded.
    assert [m.channel for m in group.presence()] == ["srv.live!watcher", "plain?other"]
    assert layer.lease_sweep("sweeper", 5) == ["srv.dead!"]
    assert [m.channel for m in group.presence()] == ["srv.live!watcher", "plain?other"]
    assert sorted(group.channel_layer_members()) == ["plain?other", "srv.live!watcher"]
    leaves = _texts(layer, "srv.live!watcher")
    assert sorted((e["presence"], e["user"]) for e in leaves) == [("leave", 0), ("leave", 1), ("leave", 2)]
    assert layer.lease_sweep("sweeper", 5) == []
    assert _texts(layer, "srv.live!watcher") == []  # each leave once


def test_records_go_with_flush(layer):
    group = Group("room", channel_layer=layer)
    group.join("srv.a!one", user=1)
    layer.flush()
    assert group.presence() == []


def test_records_older_than_group_expiry_are_dropped(redis_url, key_prefix):
    for layer in (InMemoryChannelLayer(group_expiry=1), _redis(key_prefix, [redis_url], group_expiry=1)):
        try:
            group = Group("room", channel_layer=layer)
            group.join("srv.a!one", user=1)
            assert len(group.presence()) == 1
            time.sleep(1.2)
            assert group.presence() == []
        finally:
            layer.flush()
            layer.close()


@pytest.fixture(params=["inmemory", "redis", "redis-two-shards"])
def big_layer(request, redis_url, key_prefix):
    """The layers 5,000 members are tested on. Not IPC: there every join rewrites the group's files whole,
    so 5,000 joins take about a minute on this VM (docs/topics/presence.md, "Layers")."""
    if request.param == "inmemory":
        layer = InMemoryChannelLayer(**SETTINGS)
    elif request.param == "redis":
        layer = _redis(key_prefix, [redis_url])
    else:
        base = redis_url.rsplit("/", 1)[0]
        layer = _redis(key_prefix, [f"{base}/0", f"{base}/1"])
    yield layer
    layer.flush()
    layer.close()


def test_five_thousand_members_all_listed(big_layer):
    """No member cap: 5,000 members on 10 servers (and plain channels), all listed, each once."""
    layer = big_layer
    group = Group("big", channel_layer=layer)
    channels = [f"srv.n{i % 10}!c{i}" if i % 5 else f"plain?c{i}" for i in range(5000)]
    for i, channel in enumerate(channels):
        layer.presence_join("big", channel, i, {"i": i})
    started = time.perf_counter()
    members = group.presence()
    took = time.perf_counter() - started
    assert len(members) == 5000
    assert {m.channel: (m.user, m.info) for m in members} == {c: (i, {"i": i}) for i, c in enumerate(channels)}
    print(f"\npresence() of 5,000 members on {type(layer).__name__}: {took * 1000:.0f} ms")
    assert took < 5, took  # a loose sanity bound; benchmarks/presence_bench.py measures it


def test_layers_without_presence_say_so_naming_the_layer():
    class GroupsOnlyLayer:
        extensions = ["groups"]
        group_expiry = 60

        def __init__(self):
            self.discarded = []

        def group_add(self, group, channel):
            pass

        def group_discard(self, group, channel):
            self.discarded.append((group, channel))

        def group_channels(self, group):
            return []

        def send_group(self, group, message):
            pass

    layer = GroupsOnlyLayer()
    group = Group("room", channel_layer=layer)
    with pytest.raises(PresenceNotSupported, match="GroupsOnlyLayer does not support presence"):
        group.join("srv.a!one", user=1)
    with pytest.raises(NotImplementedError, match="GroupsOnlyLayer"):
        group.presence()
    group.discard("srv.a!one")  # discard still works, as before
    assert layer.discarded == [("room", "srv.a!one")]
    assert not supports(layer, "presence")


def test_on_redis_cluster_members_on_many_buckets_are_listed_and_swept(key_prefix):
    layer = _redis(key_prefix, [cluster_setup().url()])
    try:
        group = Group("room", channel_layer=layer)
        layer.lease_renew("srv.dead!", 0.3)
        group.join("srv.live!watcher")
        servers = [f"srv.s{i}!" for i in range(8)] + ["srv.dead!"]
        for i, server in enumerate(servers):
            group.join(f"{server}m{i}", user=i, events=True)
        assert len({layer.keys.shard_of(s).index for s in servers}) > 1  # members on several buckets
        assert len(group.presence()) == 10
        _texts(layer, "srv.live!watcher")
        time.sleep(0.4)
        assert "srv.dead!m8" not in [m.channel for m in group.presence()]
        assert layer.lease_sweep("sweeper", 5) == ["srv.dead!"]
        assert len(group.presence()) == 9
        assert [(e["presence"], e["user"]) for e in _texts(layer, "srv.live!watcher")] == [("leave", 8)]
        assert "srv.dead!m8" not in group.channel_layer_members()
    finally:
        layer.flush()
        layer.close()


def test_the_rabbitmq_layer_refuses_presence_by_name():
    pytest.importorskip("pika")
    from channels_core.layers.rabbitmq.layer import RabbitMQChannelLayer

    layer = RabbitMQChannelLayer(prefix=f"tpres{uuid.uuid4().hex[:8]}")
    try:
        group = Group("room", channel_layer=layer)
        with pytest.raises(PresenceNotSupported, match="RabbitMQChannelLayer does not support presence"):
            group.join("srv.a!one", user=1)
        with pytest.raises(PresenceNotSupported, match="RabbitMQChannelLayer"):
            group.presence()
    finally:
        layer.close()


def test_a_django_anonymous_user_is_recorded_as_none():
    from django.contrib.auth.models import AnonymousUser

    layer = InMemoryChannelLayer()
    message = make_message("websocket.connect", layer=layer, reply_channel="srv.a!sock1")
    message.user = AnonymousUser()
    Group("room", channel_layer=layer).join(message)
    assert [(m.channel, m.user) for m in layer.presence_members("room")] == [("srv.a!sock1", None)]
