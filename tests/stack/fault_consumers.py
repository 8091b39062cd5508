"""Consumers for the worker fault tests (tests/stack/test_worker_faults.py), routed with
TEST_CHANNEL_ROUTING=tests.stack.fault_consumers.channel_routing.

fault.record              record message["id"] in the Redis set <prefix>handled (the SIGTERM test)
/fault/echo/   receive    echo the text
/fault/slow/   receive    hand the work to the `slow-jobs` channel (the recommended recipe)
/fault/inline/ receive    sleep `text` seconds in the consumer itself, then reply (threads alone)
/fault/room/   connect    accept and join the group "fault-room"; receive: echo; disconnect: leave
/fault/busy/   receive    echo after 4 ms of work (more traffic than the workers take: backpressure)
slow-jobs                 sleep message["seconds"], then reply "slow:<text>" on its reply channel
http.request              the test project's Django views (tests.project.urls: / answers "OK")
"""

from __future__ import annotations

import os
import time

import redis

from channels_core.channel import Channel, Group
from routing import route

ROOM = "fault-room"
SLOW_CHANNEL = "slow-jobs"
BUSY_SECONDS = 0.004
_redis: redis.Redis | None = None


def _store() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    return _redis


def handled_key() -> str:
    return os.environ.get("TEST_LAYER_PREFIX", "project:") + "handled"


def record(message, **kwargs):
    _store().sadd(handled_key(), message["id"])


def accept(message, **kwargs):
    message.reply_channel.send({"accept": True})


def echo(message, **kwargs):
    message.reply_channel.send({"text": message.content.get("text") or ""})


def to_slow_jobs(message, **kwargs):
    """The recipe: a consumer that would be slow only forwards the work to its own channel."""
    text = message.content.get("text") or "5"
    Channel(SLOW_CHANNEL).send({"reply_channel": message.reply_channel.name, "text": text, "seconds": float(text)})


def slow_job(message, **kwargs):
    time.sleep(message["seconds"])
    Channel(message["reply_channel"]).send({"text": f"slow:{message['text']}"})


def busy_echo(message, **kwargs):
    """An echo that costs 4 ms: two one-thread workers take about 400 frames a second."""
    time.sleep(BUSY_SECONDS)
    message.reply_channel.send({"text": message.content.get("text") or ""})


def inline_slow(message, **kwargs):
    text = message.content.get("text") or "5"
    time.sleep(float(text))
    message.reply_channel.send({"text": f"slow:{text}"})


def room_connect(message, **kwargs):
    Group(ROOM).add(message.reply_channel)
    message.reply_channel.send({"accept": True})


def room_disconnect(message, **kwargs):
    Group(ROOM).discard(message.reply_channel)


channel_routing = [
    route("fault.record", record),
    route("websocket.connect", room_connect, path=r"^/fault/room/$"),
    route("websocket.connect", accept, path=r"^/fault/"),
    route("websocket.receive", echo, path=r"^/fault/(?:echo|room)/$"),
    route("websocket.receive", to_slow_jobs, path=r"^/fault/slow/$"),
    route("websocket.receive", inline_slow, path=r"^/fault/inline/$"),
    route("websocket.receive", busy_echo, path=r"^/fault/busy/$"),
    route("websocket.disconnect", room_disconnect, path=r"^/fault/room/$"),
    route(SLOW_CHANNEL, slow_job),
]
