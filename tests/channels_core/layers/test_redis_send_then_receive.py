"""`RedisChannelLayer.send_then_receive_batch`: a worker's last reply written with its next read.

Against a private Redis: one write for both, the send's failures (a full
channel, a script the server lost) raised or recovered like `send` with no
message of the read lost, and the plain two-step path where one write
cannot do it.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis

from channels_core.layers import RedisChannelLayer
from channels_core.layers.errors import ChannelFull
from channels_core.layers.redis import lean
from channels_core.layers.redis.redis_py_private import socket_of


@pytest.fixture
def layer(private_redis):
    layer = RedisChannelLayer(hosts=[private_redis.url], prefix=f"t{uuid.uuid4().hex[:8]}:", capacity=2)
    layer.send("warm.up", {"x": 1})  # the handshake and the SEND script, as a worker's earlier replies do
    yield layer
    layer.close()


def _writes(monkeypatch) -> list[int]:
    """Count the writes of every redis-py connection from now on, through redis-py or the lean path."""
    writes: list[int] = []
    original = redis.connection.AbstractConnection.send_packed_command
    original_lean = lean.Replies.send

    def counted(self, command, check_health=True):
        writes.append(1)
        return original(self, command, check_health)

    def counted_lean(self, data):
        if socket_of(self.conn) is not None:  # else redis-py connects and writes it, counted above
            writes.append(1)
        return original_lean(self, data)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    monkeypatch.setattr(lean.Replies, "send", counted_lean)
    return writes


def test_reply_and_read_in_one_write(layer, monkeypatch):
    layer.send("http.request", {"n": 1})
    layer.send("http.request", {"n": 2})
    writes = _writes(monkeypatch)
    got = layer.send_then_receive_batch("reply!abc", {"status": 200}, ["http.request"], 4, 0.5)
    assert len(writes) == 1
    assert [m["n"] for _, m in got] == [1, 2]
    assert layer.receive(["reply!"]) == ("reply!abc", {"status": 200})


def test_nothing_to_read_waits_the_timeout_and_still_sends(layer):
    start = time.monotonic()
    got = layer.send_then_receive_batch("reply!abc", {"status": 200}, ["http.request"], 4, 0.3)
    waited = time.monotonic() - start
    assert got == []
    assert 0.25 <= waited < 1.5
    assert layer.receive(["reply!"]) == ("reply!abc", {"status": 200})


def test_a_message_arriving_during_the_wait_is_read(layer, private_redis):
    other = RedisChannelLayer(hosts=[private_redis.url], prefix=layer.prefix)
    try:
        timer = threading.Timer(0.1, lambda: other.send("http.request", {"late": True}))
        timer.start()
        got = layer.send_then_receive_batch("reply!abc", {"status": 200}, ["http.request"], 4, 2.0)
        timer.join()
    finally:
        other.close()
    assert got == [("http.request", {"late": True})]


def test_full_reply_channel_raises_and_loses_no_message_of_the_read(layer):
    layer.send("full.ch", {"i": 1})
    layer.send("full.ch", {"i": 2})  # capacity 2: full
    layer.send("http.request", {"n": 1})
    start = time.monotonic()
    with pytest.raises(ChannelFull):
        layer.send_then_receive_batch("full.ch", {"i": 3}, ["http.request"], 4, 2.0)
    assert time.monotonic() - start < 1.0  # the read was cancelled, not waited out
    # The read was cancelled at once; what it took anyway is buffered, the rest still queued.
    assert layer.receive_batch(["http.request"], 4, block=True, timeout=0.5) == [("http.request", {"n": 1})]
    assert [m["i"] for _, m in layer.receive_batch(["full.ch"], 4)] == [1, 2]


def test_script_lost_by_the_server_is_loaded_and_the_reply_sent(layer, private_redis):
    layer.send("http.request", {"n": 1})
    client = private_redis.client()
    try:
        client.script_flush()
    finally:
        client.close()
    got = layer.send_then_receive_batch("reply!abc", {"status": 200}, ["http.request"], 4, 0.5)
    got += layer.receive_batch(["http.request"], 4, block=True, timeout=0.5)
    assert got == [("http.request", {"n": 1})]
    assert layer.receive(["reply!"]) == ("reply!abc", {"status": 200})


def test_two_shards_send_then_read_in_two_steps(private_redis, second_private_redis):
    layer = RedisChannelLayer(hosts=[private_redis.url, second_private_redis.url], prefix=f"t{uuid.uuid4().hex[:8]}:")
    try:
        layer.send("http.request", {"n": 1})
        got = layer.send_then_receive_batch("reply!abc", {"status": 200}, ["http.request"], 4, 0.5)
        got += layer.receive_batch(["http.request"], 4)
        assert got == [("http.request", {"n": 1})]
        assert layer.receive(["reply!"]) == ("reply!abc", {"status": 200})
    finally:
        layer.close()
