"""A worker settles its heap in `ready()`, once Django and the app are loaded (channels_core.layers.heap)."""

from __future__ import annotations

import logging
import re

from channels_core.asgi import ChannelLayerWrapper
from channels_core.layers import heap
from channels_core.layers.inmemory import InMemoryChannelLayer
from worker.worker import Worker


def test_a_worker_settles_when_ready(monkeypatch, caplog):
    monkeypatch.setattr(heap, "_settled_in", None)
    layer = ChannelLayerWrapper(InMemoryChannelLayer(), "test", [])
    with caplog.at_level(logging.DEBUG, logger="channels_core.layers.heap"):
        Worker(layer, signal_handlers=False).ready()
    assert re.search(r"Froze \d+ startup objects", caplog.text), caplog.text
