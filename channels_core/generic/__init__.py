"""Generic (class-based) consumers, as in Channels 1.x `channels.generic`."""

from .base import BaseConsumer
from .websockets import (
    JsonWebsocketConsumer,
    WebsocketConsumer,
    WebsocketDemultiplexer,
    WebsocketMultiplexer,
)

__all__ = [
    "BaseConsumer",
    "JsonWebsocketConsumer",
    "WebsocketConsumer",
    "WebsocketDemultiplexer",
    "WebsocketMultiplexer",
]
