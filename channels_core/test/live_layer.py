"""Holds the layer a live-server interface-server process serves (`channels_core.test.live_layer:channel_layer`)."""

from typing import Any

channel_layer: Any = None
