"""Garbage pushed straight into the Redis lists of a channel, next to good messages.

Every read path of the Redis layer (the blocking pop, BLMPOP batches, the
non-blocking POP script, the event loop's receiver) decodes each element on its
own: an unreadable one is dropped, counted and logged once per channel, and the
good messages popped together with it are all delivered, in order.
"""

from __future__ import annotations

import logging
import select
import time

import msgpack
import pytest
import redis

from channels_core.layers import RedisChannelLayer
from channels_core.layers.drop_log import DropLog

FAR = b"99999999999999"  # a deadline (ms) far in the future, as the Lua scripts stamp it
LOGGER = "channels_core.layers.redis"

GARBAGE = {
    "unframed": b"not a layer element at all",
    "not msgpack": FAR + b"\n\xc1\xc1 not msgpack",
    "truncated msgpack": FAR + b"\n" + msgpack.packb({"text": "x" * 100})[:20],
    "not a dict": FAR + b"\n" + msgpack.packb(42),
    "2 MB": FAR + b"\n" + msgpack.packb({"bytes": b"x" * (2 * 1024 * 1024)}),
    "empty": b"",
}


@pytest.fixture
def layer(redis_url, key_prefix):
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, blocking_timeout=1, capacity=10_000)
    yield layer
    layer.flush()
    layer.close()


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def key_of(layer: RedisChannelLayer, channel: str) -> bytes:
    return layer.keys.send_target(channel).keys[0]


def interleave(layer, client, channel: str) -> list[dict]:
    """good0, garbage, good1, garbage, ... in the list of `channel`; returns the good messages."""
    key = key_of(layer, channel)
    goods = []
    for i, element in enumerate(GARBAGE.values()):
        good = {"n": i}
        layer.send(channel, good)
        goods.append(good)
        client.rpush(key, element)
    layer.send(channel, {"n": "last"})
    goods.append({"n": "last"})
    return goods


def drop_lines(caplog, channel: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and repr(channel) in r.getMessage()]


def read_all(read, expected: int, timeout: float = 10.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        got += read()
    return got


READS = {
    "blocking batch (BLMPOP)": lambda layer, ch: layer.receive_batch([ch], 100, block=True),
    "blocking batch with timeout": lambda layer, ch: layer.receive_batch([ch], 100, block=True, timeout=0.5),
    "non-blocking batch (POP script)": lambda layer, ch: layer.receive_batch([ch], 100, block=False),
    "blocking receive": lambda layer, ch: [m for m in [layer.receive([ch], block=True)] if m[0] is not None],
    "non-blocking receive": lambda layer, ch: [m for m in [layer.receive([ch], block=False)] if m[0] is not None],
}


@pytest.mark.parametrize("how", list(READS))
def test_good_messages_popped_with_garbage_are_all_delivered(layer, client, caplog, how):
    goods = interleave(layer, client, "g.ch")
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        got = read_all(lambda: READS[how](layer, "g.ch"), len(goods))
    assert got == [("g.ch", g) for g in goods]
    assert layer.decoder.drops.counts == {"g.ch": len(GARBAGE)}
    lines = drop_lines(caplog, "g.ch")
    assert len(lines) == 1, lines  # once per channel, not once per element
    assert "Dropped an unreadable element on channel 'g.ch'" in lines[0]
    assert client.llen(key_of(layer, "g.ch")) == 0


def test_the_event_receiver_delivers_the_good_replies_of_a_batch_with_garbage(layer, client, caplog):
    """The interface server's reply reader: one BLMPOP batch on `prefix!` with bad elements in it."""
    key = key_of(layer, "proc!")
    layer.send("proc!a", {"n": 0})
    client.rpush(key, FAR + b"\xff\xfe\n" + msgpack.packb({"n": "bad targets"}))  # targets not ASCII
    client.rpush(key, FAR + b"a\n\xc1")  # not msgpack
    client.rpush(key, FAR + b"a,b\n" + msgpack.packb([1, 2]))  # fanned out to two, not a dict
    layer.send("proc!b", {"n": 1})
    receiver = layer.event_receiver(["proc!"], 100)
    receiver.start()
    got: list = []
    try:
        with caplog.at_level(logging.ERROR, logger=LOGGER):
            deadline = time.monotonic() + 5
            while len(got) < 2 and time.monotonic() < deadline:
                poller = select.poll()
                poller.register(receiver.fileno(), select.POLLIN)
                if poller.poll(500):
                    got += receiver.read()
    finally:
        receiver.close()
    assert got == [("proc!a", {"n": 0}), ("proc!b", {"n": 1})]
    assert layer.decoder.drops.counts == {"proc!": 4}  # 1 + 1 + one per target of the fanned-out one
    assert len(drop_lines(caplog, "proc!")) == 1


def test_a_flood_of_garbage_is_logged_once_and_counted(layer, client, caplog):
    key = key_of(layer, "flood.ch")
    for start in range(0, 2000, 500):
        client.rpush(key, *[b"junk %d" % i for i in range(start, start + 500)])
    layer.send("flood.ch", {"after": "the flood"})
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        got = read_all(lambda: layer.receive_batch(["flood.ch"], 100, block=True, timeout=0.5), 1)
    assert got == [("flood.ch", {"after": "the flood"})]
    assert layer.decoder.drops.counts == {"flood.ch": 2000}
    assert len(drop_lines(caplog, "flood.ch")) == 1


def test_drop_log_reports_again_after_its_interval_with_the_count_since(caplog):
    drops = DropLog(logging.getLogger(LOGGER), interval=0.2)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        for _ in range(5):
            drops.drop("x.ch", "junk")
        time.sleep(0.25)
        drops.drop("x.ch", "junk")
        drops.drop("y.ch", "junk")
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(lines) == 3
    assert "1 dropped on this channel so far" in lines[0]
    assert "6 dropped on this channel so far; 4 more dropped on it since the last report" in lines[1]
    assert "'y.ch'" in lines[2]
    assert drops.counts == {"x.ch": 6, "y.ch": 1} and drops.total == 7
