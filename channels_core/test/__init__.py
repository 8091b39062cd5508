"""Test helpers (Channels 1.x `channels.test`): in-memory layers per test, clients that run consumers.

Every name loads on first use, so `channels_core.test.processes` (the child
process harness benchmarks use too) is importable without Django.
`ChannelLiveServerTestCase` (a real interface server and worker) lives in
`channels_core.test.liveserver`.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ChannelLiveServerTestCase": ".liveserver",
    "ChannelTestCase": ".base",
    "Client": ".client",
    "HttpClient": ".client",
    "TransactionChannelTestCase": ".base",
    "WSClient": ".client",
    "apply_routes": ".routes",
    "make_message": ".messages",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'channels_core.test' has no attribute {name!r}")
