"""Test helpers (Channels 1.x `channels.test`): in-memory layers per test, clients that run consumers.

`ChannelLiveServerTestCase` (a real interface server and worker) lives in
`channels_core.test.liveserver`, imported here lazily.
"""

from .base import ChannelTestCase, TransactionChannelTestCase
from .client import Client, HttpClient, WSClient
from .routes import apply_routes

__all__ = [
    "ChannelLiveServerTestCase",
    "ChannelTestCase",
    "Client",
    "HttpClient",
    "TransactionChannelTestCase",
    "WSClient",
    "apply_routes",
]


def __getattr__(name: str):
    if name == "ChannelLiveServerTestCase":
        from .liveserver import ChannelLiveServerTestCase

        return ChannelLiveServerTestCase
    raise AttributeError(f"module 'channels_core.test' has no attribute {name!r}")
