"""`RedisChannelLayer.event_receiver`: the blocking read an event loop drives, against real Redis."""

from __future__ import annotations

import select
import time
import uuid

import pytest

from channels_core.layers import LayerConnectionError, RedisChannelLayer


def read_when_ready(receiver, timeout: float = 5.0) -> list:
    """What an event loop does: wait for the socket, then read, until messages come (or `timeout`)."""
    deadline = time.monotonic() + timeout
    got: list = []
    while not got and time.monotonic() < deadline:
        poller = select.poll()
        poller.register(receiver.fileno(), select.POLLIN)
        if poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
            got = receiver.read()
    return got


@pytest.fixture
def layer(redis_url, key_prefix):
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, blocking_timeout=1, capacity=1000)
    yield layer
    layer.flush()
    layer.close()


def test_messages_arrive_in_order_in_batches(layer):
    receiver = layer.event_receiver(["proc!"], 100)
    receiver.start()
    try:
        layer.send_many("proc!a", [{"n": i} for i in range(50)])
        got = []
        while len(got) < 50:
            batch = read_when_ready(receiver)
            assert batch, "nothing arrived"
            got += batch
        assert got == [("proc!a", {"n": i}) for i in range(50)]
        assert len(got) == 50
    finally:
        receiver.close()


def test_a_timed_out_pop_returns_nothing_and_the_next_one_still_delivers(layer):
    receiver = layer.event_receiver(["proc!"], 100)
    receiver.start()
    try:
        assert receiver.deadline < time.monotonic() + 4
        poller = select.poll()
        poller.register(receiver.fileno(), select.POLLIN)
        assert poller.poll(3000), "the 1 s pop did not time out"
        assert receiver.read() == []  # the nil reply of the timed-out pop
        layer.send("proc!b", {"after": "timeout"})
        assert read_when_ready(receiver) == [("proc!b", {"after": "timeout"})]
    finally:
        receiver.close()


def test_group_fan_out_to_this_process_comes_as_one_batch(layer):
    for i in range(300):
        layer.group_add("room", f"proc!c{i}")
    receiver = layer.event_receiver(["proc!"], 100)
    receiver.start()
    try:
        layer.send_group("room", {"text": "hi"})
        got = read_when_ready(receiver)
        assert sorted(channel for channel, _ in got) == sorted(f"proc!c{i}" for i in range(300))
        assert all(message == {"text": "hi"} for _, message in got)
    finally:
        receiver.close()


def test_expired_messages_are_not_delivered(redis_url, key_prefix):
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, blocking_timeout=1, expiry=1)
    receiver = layer.event_receiver(["proc!"], 100)
    try:
        layer.send("proc!old", {"n": 1})
        time.sleep(1.2)
        layer.send("proc!new", {"n": 2})
        receiver.start()
        assert read_when_ready(receiver) == [("proc!new", {"n": 2})]
    finally:
        receiver.close()
        layer.flush()
        layer.close()


def test_outage_raises_then_start_again_works(private_redis):
    layer = RedisChannelLayer(hosts=[private_redis.url], prefix=f"t{uuid.uuid4().hex[:8]}:", blocking_timeout=1)
    receiver = layer.event_receiver(["proc!"], 100)
    try:
        receiver.start()
        private_redis.kill()
        poller = select.poll()
        poller.register(receiver.fileno(), select.POLLIN)
        assert poller.poll(3000), "a killed server's socket must become readable (EOF)"
        with pytest.raises(LayerConnectionError):
            receiver.read()
        assert receiver.fileno() >= 0  # still open, so an event loop can unregister it
        receiver.close()
        assert receiver.fileno() == -1
        with pytest.raises(LayerConnectionError):
            receiver.start()
        private_redis.restart()
        receiver.start()
        layer.send("proc!back", {"ok": True})
        assert read_when_ready(receiver) == [("proc!back", {"ok": True})]
    finally:
        receiver.close()
        layer.close()


def test_channels_on_several_servers_or_tls_are_refused(private_redis, second_private_redis):
    layer = RedisChannelLayer(hosts=[private_redis.url, second_private_redis.url], prefix="t:")
    names = [f"p{i}!" for i in range(20)]  # some of these hash to each server
    with pytest.raises(NotImplementedError, match="span 2 servers"):
        layer.event_receiver(names)
    layer.close()
    tls = RedisChannelLayer(hosts=["rediss://127.0.0.1:1"], prefix="t:")
    with pytest.raises(NotImplementedError, match="TLS"):
        tls.event_receiver(["p!"])
    tls.close()
