"""Every kind of call the Redis layer makes, for checking which Redis commands (and keys) it needs."""

from __future__ import annotations

import select
import threading
import time

from channels_core.layers import RedisChannelLayer
from channels_core.layers.contract import supports
from channels_core.layers.errors import ChannelFull


def exercise(layer: RedisChannelLayer) -> None:
    """Send, receive (plain, batch, blocking on several shards), groups, capacity, ordering, leases,
    statistics, the event receiver and flush; asserts each works."""
    layer.ping()
    layer.send("w.ch", {"n": 1})
    layer.send_many("w.ch", [{"n": 2}, {"n": 3}])
    assert layer.receive(["w.ch"]) == ("w.ch", {"n": 1})
    assert [m for _, m in layer.receive_batch(["w.ch"], 10)] == [{"n": 2}, {"n": 3}]
    single = layer.new_channel("w.single?")
    layer.send(single, {"single": True})
    assert layer.receive([single]) == (single, {"single": True})

    # Blocking receives over channels on every shard: the first reply wins, the other reads are cancelled.
    spread = [f"w.spread{i}" for i in range(8)]
    got: dict = {}
    reader = threading.Thread(target=lambda: got.setdefault("m", layer.receive(spread, block=True)))
    reader.start()
    time.sleep(0.2)
    layer.send(spread[5], {"woke": True})
    reader.join(10)
    assert got["m"] == (spread[5], {"woke": True})
    for channel in spread:  # and once more each, so every shard answers a blocking read
        layer.send(channel, {"c": channel})
        assert layer.receive(spread, block=True) == (channel, {"c": channel})

    # Groups, including a fanned-out process queue.
    layer.group_add("w-group", "w.proc!a")
    layer.group_add("w-group", "w.proc!b")
    layer.group_add("w-group", "w.plain")
    assert sorted(layer.group_channels("w-group")) == ["w.plain", "w.proc!a", "w.proc!b"]
    layer.send_group("w-group", {"all": 1})
    assert sorted(c for c, _ in layer.receive_batch(["w.proc!"], 10)) == ["w.proc!a", "w.proc!b"]
    assert layer.receive(["w.plain"]) == ("w.plain", {"all": 1})
    layer.group_discard("w-group", "w.plain")
    layer.send_group("w-group", {"all": 2})
    assert layer.receive(["w.plain"]) == (None, None)
    assert len(layer.receive_batch(["w.proc!"], 10)) == 2

    # Capacity.
    capacity = layer.get_capacity("w.full")
    layer.send_many("w.full", [{}] * capacity)
    try:
        layer.send("w.full", {})
    except ChannelFull:
        pass
    else:
        raise AssertionError("no ChannelFull")

    if supports(layer, "ordering"):
        layer.order_forget("w.proc!a")
    if supports(layer, "statistics"):
        assert layer.global_statistics()["messages_count"] > 0
        assert layer.channel_statistics("w.full")["messages_pending"] == capacity
    if supports(layer, "event_receiver"):
        receiver = layer.event_receiver(["w.proc!"])
        receiver.start()
        layer.send("w.proc!z", {"event": True})
        messages: list = []
        deadline = time.monotonic() + 5
        while not messages and time.monotonic() < deadline:
            if select.select([receiver.fileno()], [], [], 1)[0]:
                messages += receiver.read()
        assert messages == [("w.proc!z", {"event": True})], messages
        receiver.close()
    if supports(layer, "leases"):
        layer.lease_renew("w.server!", 0.5, {"kind": "server"})
        layer.lease_track("w.server!", "w.server!c1", "websocket.disconnect", {"reply_channel": "w.server!c1"})
        assert layer.lease_connections("w.server!") == ["w.server!c1"]
        assert "w.server!" in layer.lease_holders()
        time.sleep(0.7)
        layer.lease_renew("w.sweeper", 5.0, {"kind": "worker"})
        layer.lease_sweep("w.sweeper", 5.0)
        layer.lease_release("w.server!", "w.server!c1", "websocket.disconnect", {})
        layer.lease_end("w.sweeper")
    layer.flush()
