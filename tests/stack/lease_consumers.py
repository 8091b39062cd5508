"""Consumers for the lease tests (tests/stack/test_leases_stack.py), routed with
TEST_CHANNEL_ROUTING=tests.stack.lease_consumers.channel_routing.

/leases/  connect     join the group "lease-room", accept          (all three with enforce_ordering,
          receive     echo the text                                  so a swept disconnect must carry
          disconnect  leave the group; count the run in the Redis     the order the socket waits for)
                      hash <prefix>test:disconnects (reply channel -> runs)
"""

from __future__ import annotations

import os

import redis

from channels_core.channel import Group
from channels_core.sessions import enforce_ordering
from routing import route

ROOM = "lease-room"
_redis: redis.Redis | None = None


def runs_key() -> str:
    return os.environ["TEST_LAYER_PREFIX"] + "test:disconnects"


def _store() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    return _redis


@enforce_ordering
def connect(message):
    Group(ROOM).add(message.reply_channel)
    message.reply_channel.send({"accept": True})


@enforce_ordering
def receive(message):
    message.reply_channel.send({"text": message["text"]})


@enforce_ordering
def disconnect(message):
    Group(ROOM).discard(message.reply_channel)
    _store().hincrby(runs_key(), message.reply_channel.name, 1)


channel_routing = [
    route("websocket.connect", connect, path=r"^/leases/$"),
    route("websocket.receive", receive, path=r"^/leases/$"),
    route("websocket.disconnect", disconnect, path=r"^/leases/$"),
]
