"""The consumer side of group history: `Group.add(since=...)`, `@resume_groups`, and layers without history."""

from __future__ import annotations

import json
import uuid

import pytest

from channels_core import Group
from channels_core.exceptions import DenyConnection
from channels_core.history import LATEST, HistoryNotSupported, Position, resume_groups, since_positions
from channels_core.layers import InMemoryChannelLayer
from channels_core.test import make_message

HISTORY = {"room-*": {"size": 100, "ttl": 60}}


def texts(layer, channel: str) -> list[dict]:
    out = []
    while True:
        name, message = layer.receive([channel])
        if name is None:
            return out
        out.append(json.loads(message["text"]) if "text" in message else message)


def test_group_add_without_since_is_the_1x_join():
    layer = InMemoryChannelLayer(group_history=HISTORY)
    Group("room-1", channel_layer=layer).add("a.x")
    assert texts(layer, "a.x") == []  # no status frame: nothing changed for 1.x code
    Group("room-1", channel_layer=layer).send({"text": "hi"}, immediately=True)
    assert texts(layer, "a.x")[0]["text"] == "hi"


def test_group_add_since_replays_then_goes_live():
    layer = InMemoryChannelLayer(group_history=HISTORY)
    room = Group("room-1", channel_layer=layer)
    room.add("a.x", since=LATEST)
    epoch = texts(layer, "a.x")[0]["history"]["epoch"]
    for n in range(3):
        room.send({"text": str(n)}, immediately=True)
    room.add("b.y", since=f"{epoch}:1")
    got = texts(layer, "b.y")
    assert [f.get("text") for f in got] == ["1", "2", None]
    assert got[-1]["history"] == {"group": "room-1", "epoch": epoch, "offset": 3, "recovered": True}


def test_resume_groups_joins_with_the_clients_positions_after_the_consumer():
    layer = InMemoryChannelLayer(group_history=HISTORY)
    layer.history_join("room-7", "w.x", LATEST)
    epoch = texts(layer, "w.x")[0]["history"]["epoch"]
    for n in range(4):
        layer.send_group("room-7", {"text": str(n)})
    calls = []

    @resume_groups("room-{room}", lambda message, room: [f"room-{room}-alerts"])
    def connect(message, room):
        calls.append(room)
        message.reply_channel.send({"accept": True}, immediately=True)

    message = make_message("websocket.connect", layer=layer, query_string=f"since=room-7:{epoch}:2&x=1".encode())
    assert since_positions(message) == {"room-7": Position(epoch, 2)}
    connect(message, room="7")
    assert calls == ["7"]
    got = texts(layer, message.reply_channel.name)
    assert got[0] == {"accept": True}  # sent by the consumer before the decorator joined
    frames = [f for f in got if "history" in f]
    assert [f.get("text") for f in frames] == ["2", "3", None, None]
    assert frames[2]["history"]["group"] == "room-7" and frames[2]["history"]["recovered"] is True
    assert frames[3]["history"] == {
        "group": "room-7-alerts",
        "epoch": frames[3]["history"]["epoch"],
        "offset": 0,
        "recovered": True,
    }


def test_a_consumer_that_denies_joins_nothing():
    layer = InMemoryChannelLayer(group_history=HISTORY)

    @resume_groups("room-1")
    def connect(message):
        raise DenyConnection

    message = make_message("websocket.connect", layer=layer)
    with pytest.raises(DenyConnection):
        connect(message)
    assert layer.group_channels("room-1") == []


def test_a_layer_without_history_refuses_since_clearly():
    pytest.importorskip("posix_ipc")
    from channels_core.layers import IPCChannelLayer

    layer = IPCChannelLayer(prefix=f"h{uuid.uuid4().hex[:8]}")
    try:
        with pytest.raises(HistoryNotSupported, match="IPCChannelLayer keeps no group history"):
            Group("room-1", channel_layer=layer).add("a.x", since=LATEST)
        assert layer.group_channels("room-1") == []  # refused, not joined without the replay
    finally:
        layer.flush()
        layer.close()


def test_a_group_without_history_refuses_since():
    layer = InMemoryChannelLayer(group_history=HISTORY)
    with pytest.raises(HistoryNotSupported, match="no group_history pattern"):
        Group("lobby", channel_layer=layer).add("a.x", since=LATEST)
