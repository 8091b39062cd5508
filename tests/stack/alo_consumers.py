"""A thumbnail-style job consumer for tests/stack/test_at_least_once_stack.py.

thumbnails   {"job": id, "seconds": s}: note the run, "render" for s seconds, note the result.

Bookkeeping in Redis under the layer's prefix (TEST_LAYER_PREFIX):
    <prefix>alo:started    hash job -> runs started
    <prefix>alo:done       hash job -> runs finished
    <prefix>alo:running    hash "pid.thread" -> job it is rendering now (the killer picks its victims here)
    <prefix>alo:count      hash job -> the highest delivery_count seen
"""

from __future__ import annotations

import os
import threading
import time

import redis

from routing import route

_redis: redis.Redis | None = None


def store() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    return _redis


def key(name: str, prefix: str | None = None) -> str:
    """A bookkeeping key under `prefix` (default: this process's layer prefix, TEST_LAYER_PREFIX)."""
    return (prefix or os.environ.get("TEST_LAYER_PREFIX", "project:")) + "alo:" + name


def thumbnail(message, **kwargs):
    job = message["job"]
    r = store()
    pid = f"{os.getpid()}.{threading.get_ident()}"
    r.pipeline().hincrby(key("started"), job, 1).hset(key("running"), pid, job).execute()
    count = message.delivery_count
    if count > int(r.hget(key("count"), job) or 0):
        r.hset(key("count"), job, count)
    time.sleep(message["seconds"])  # the rendering
    r.pipeline().hincrby(key("done"), job, 1).hdel(key("running"), pid).execute()


channel_routing = [route("thumbnails", thumbnail)]
