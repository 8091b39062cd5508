"""`channels_core.consumer_sends`: a consumer's sends go out when it returns, in order, never raising."""

from __future__ import annotations

import ast
import logging
import threading
from pathlib import Path

from channels_core import consumer_sends
from channels_core.channel import Channel, Group
from channels_core.consumer_sends import PendingMessageStore, pending_message_store
from channels_core.layers import InMemoryChannelLayer


def drain(layer, channel: str) -> list[dict]:
    got = []
    while True:
        received, content = layer.receive([channel])
        if received is None:
            return got
        got.append(content)


def test_the_1x_names_are_the_same_objects():
    from channels_core import message

    assert message.PendingMessageStore is PendingMessageStore
    assert message.pending_message_store is pending_message_store


def test_sends_between_start_and_flush_go_out_at_the_flush_in_order():
    layer = InMemoryChannelLayer()
    pending_message_store.start()
    try:
        Channel("a", channel_layer=layer).send({"n": 1})
        Channel("a", channel_layer=layer).send({"n": 2}, immediately=True)
        Channel("a", channel_layer=layer).send({"n": 3})
        assert drain(layer, "a") == [{"n": 2}]
    finally:
        pending_message_store.flush()
    assert not pending_message_store.active
    assert drain(layer, "a") == [{"n": 1}, {"n": 3}]


def test_group_sends_are_buffered_too():
    layer = InMemoryChannelLayer()
    layer.group_add("g", "member")
    pending_message_store.start()
    Group("g", channel_layer=layer).send({"x": 1})
    assert drain(layer, "member") == []
    pending_message_store.flush()
    assert drain(layer, "member") == [{"x": 1}]


def test_discard_forgets_what_was_buffered():
    layer = InMemoryChannelLayer()
    pending_message_store.start()
    Channel("a", channel_layer=layer).send({"n": 1})
    pending_message_store.discard()
    pending_message_store.flush()
    assert drain(layer, "a") == []


def test_the_buffer_belongs_to_one_thread():
    layer = InMemoryChannelLayer()
    pending_message_store.start()
    try:
        other = threading.Thread(target=lambda: Channel("b", channel_layer=layer).send({"from": "thread"}))
        other.start()
        other.join()
        assert drain(layer, "b") == [{"from": "thread"}]
    finally:
        pending_message_store.flush()


def test_flush_never_raises_and_drops_what_stays_full(monkeypatch, caplog):
    monkeypatch.setattr(consumer_sends, "FLUSH_RETRY_SECONDS", 0.05)
    layer = InMemoryChannelLayer(capacity=1)
    store = PendingMessageStore()

    class Broken:
        name = "broken"
        channel_layer = layer

        def send(self, content, immediately=False):
            raise RuntimeError("cannot send")

    store.start()
    store.append(Channel("full", channel_layer=layer), {"n": 1})
    store.append(Channel("full", channel_layer=layer), {"n": 2})
    store.append(Broken(), {"n": 3})
    with caplog.at_level(logging.ERROR, logger="channels_core"):
        store.flush()
    assert store.dropped == 1
    assert drain(layer, "full") == [{"n": 1}]
    assert "stayed full" in caplog.text
    assert "Failed to send a buffered message to broken" in caplog.text


CHANNELS_CORE = Path(consumer_sends.__file__).parent


def _imports(module: str) -> set[str]:
    """The channels_core modules `module` imports, at the top or inside functions."""
    tree = ast.parse((CHANNELS_CORE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("channels_core."):
            found.add(node.module.split(".")[1])
    return found


def test_asgi_channel_and_message_import_each_other_one_way_only():
    # message -> channel -> asgi, and all of them -> consumer_sends; never back.
    graph = {name: _imports(name) for name in ("asgi", "channel", "message", "consumer_sends")}
    assert "channel" not in graph["asgi"] and "message" not in graph["asgi"]
    assert "message" not in graph["channel"]
    assert graph["consumer_sends"] <= {"layers.backoff", "layers.errors"}
