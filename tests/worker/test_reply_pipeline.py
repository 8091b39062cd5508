"""The worker sends the last reply of a batch with its next read (`channels_core.reply_hold`).

On a layer with `send_then_receive_batch` (the Redis layer's, here an
in-memory stand-in that records its calls): the held reply goes out with
the read, in order with everything else the client is sent, and before the
worker exits.
"""

from __future__ import annotations

import pytest

from channels_core.asgi import ChannelLayerWrapper
from channels_core.channel import Channel
from channels_core.layers import InMemoryChannelLayer
from channels_core.reply_hold import reply_hold
from routing import route
from tests.support.waiting import wait_for
from tests.worker.test_worker import Running, replies
from worker import Worker


class _PipeliningLayer(InMemoryChannelLayer):
    """`send_then_receive_batch` as two steps, recording which replies went out with a read."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.with_read: list[dict] = []

    def send_then_receive_batch(self, channel, message, channels, max_messages, timeout):
        self.send(channel, message)
        self.with_read.append(message)
        return self.receive_batch(channels, max_messages, block=True, timeout=timeout)


def _layer(consumer=None) -> tuple[ChannelLayerWrapper, _PipeliningLayer]:
    inner = _PipeliningLayer(blocking_timeout=0.05)
    return ChannelLayerWrapper(inner, "test", [route("req.ch", consumer)] if consumer else []), inner


def _holding_consumer(then=None):
    """Like ViewConsumer: offers its (only) reply to the hold, sends it at once if refused."""

    def consumer(message, **kwargs):
        reply = {"n": message["n"]}
        if not reply_hold.hold(message.reply_channel.name, reply):
            message.reply_channel.send(reply, immediately=True)
        if then is not None:
            then(message)

    return consumer


def test_the_last_reply_of_a_batch_goes_out_with_the_next_read_and_order_is_kept():
    layer, inner = _layer(_holding_consumer())
    reply = layer.new_channel("test.reply?")
    for n in range(6):
        layer.send("req.ch", {"n": n, "reply_channel": reply})
    worker = Worker(layer, signal_handlers=False, prefetch=4)
    got: list[dict] = []
    with Running(worker):
        assert wait_for(lambda: got.extend(replies(layer, reply)) or len(got) == 6, 5)
    assert [r["n"] for r in got] == list(range(6))
    # Batches of 4 then 2: the last reply of each left with a read, the others at once.
    assert [r["n"] for r in inner.with_read] == [3, 5]


def test_a_consumer_that_raises_after_holding_sends_the_reply_at_once(caplog):
    def fail(message):
        raise RuntimeError("after the reply")

    layer, inner = _layer(_holding_consumer(then=fail))
    reply = layer.new_channel("test.reply?")
    worker = Worker(layer, signal_handlers=False)
    layer.send("req.ch", {"n": 1, "reply_channel": reply})
    got: list[dict] = []
    with Running(worker):
        assert wait_for(lambda: got.extend(replies(layer, reply)) or len(got) >= 1, 5)
    assert got[0] == {"n": 1}
    assert inner.with_read == []  # sent at once: something else could follow it
    assert "after the reply" in caplog.text


def test_sends_buffered_after_the_hold_follow_the_held_reply():
    def more(message):
        message.reply_channel.send({"after": True})  # buffered until the consumer ends

    layer, inner = _layer(_holding_consumer(then=more))
    reply = layer.new_channel("test.reply?")
    layer.send("req.ch", {"n": 7, "reply_channel": reply})
    worker = Worker(layer, signal_handlers=False)
    got: list[dict] = []
    with Running(worker):
        assert wait_for(lambda: got.extend(replies(layer, reply)) or len(got) == 2, 5)
    assert got == [{"n": 7}, {"after": True}]
    assert inner.with_read == []


def test_the_held_reply_is_sent_before_the_worker_exits():
    layer, inner = _layer()
    worker = Worker(layer, signal_handlers=False)
    consumer = _holding_consumer(then=lambda message: setattr(worker, "termed", True))
    layer.router.add_route(route("req2.ch", consumer))
    reply = layer.new_channel("test.reply?")
    layer.send("req2.ch", {"n": 9, "reply_channel": reply})
    worker.run()
    assert replies(layer, reply) == [{"n": 9}]
    assert inner.with_read == []


def test_outside_a_worker_nothing_is_held():
    layer, _ = _layer()
    reply = layer.new_channel("test.reply?")
    assert not reply_hold.hold(reply, {"x": 1})
    Channel(reply, channel_layer=layer).send({"x": 2})
    assert replies(layer, reply) == [{"x": 2}]


@pytest.mark.parametrize("pipelined", [True, False])
def test_a_layer_without_the_method_sends_at_once(pipelined):
    inner = _PipeliningLayer(blocking_timeout=0.05) if pipelined else InMemoryChannelLayer(blocking_timeout=0.05)
    layer = ChannelLayerWrapper(inner, "test", [route("req.ch", _holding_consumer())])
    reply = layer.new_channel("test.reply?")
    layer.send("req.ch", {"n": 3, "reply_channel": reply})
    worker = Worker(layer, signal_handlers=False)
    got: list[dict] = []
    with Running(worker):
        assert wait_for(lambda: got.extend(replies(layer, reply)) or len(got) == 1, 5)
    assert got == [{"n": 3}]
    if pipelined:
        assert inner.with_read == [{"n": 3}]
