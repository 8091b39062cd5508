"""The Channels 1.x architecture on today's Python: layers, channels, groups.

Importing this package needs neither configured Django settings nor
Twisted: `Channel`, `Group` and `channel_layers` load on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

DEFAULT_CHANNEL_LAYER = "default"

_LAZY = {
    "Channel": "channels_core.channel",
    "Group": "channels_core.channel",
    "channel_layers": "channels_core.asgi",
    # Channels 1.x exported the routing helpers from the top level too.
    "route": "routing",
    "route_class": "routing",
    "include": "routing",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'channels_core' has no attribute {name!r}")
