"""`Message`: what a consumer is handed.

`PendingMessageStore` and `pending_message_store` (consumer sends go out
when the consumer returns) live in `channels_core.consumer_sends`; they are
importable from here too, as in Channels 1.x.
"""

from __future__ import annotations

import copy
from typing import Any

from .channel import Channel
from .consumer_sends import PendingMessageStore, pending_message_store
from .layers.reliable import DELIVERY_KEY

__all__ = ["Message", "PendingMessageStore", "pending_message_store"]


class Message:
    """One message handed to a consumer: dict-like content plus its channel and reply channel."""

    def __init__(self, content: dict, channel_name: str, channel_layer: Any) -> None:
        self.content = content
        self.channel_layer = channel_layer
        self.channel = Channel(channel_name, channel_layer=channel_layer)
        reply = content.get("reply_channel") if isinstance(content, dict) else None
        self.reply_channel = Channel(reply, channel_layer=channel_layer) if reply else None

    def __getitem__(self, key: str) -> Any:
        return self.content[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.content[key] = value

    def __contains__(self, key: str) -> bool:
        return key in self.content

    def keys(self):
        return self.content.keys()

    def values(self):
        return self.content.values()

    def items(self):
        return self.content.items()

    def get(self, key: str, default: Any = None) -> Any:
        return self.content.get(key, default)

    @property
    def delivery_count(self) -> int:
        """How many times this message was handed to a consumer, this time included.

        Always 1 except on at-least-once channels (see docs/topics/background-work.md),
        where a message whose worker died or whose consumer raised comes back with 2, 3, ...
        """
        delivery = self.content.get(DELIVERY_KEY) if isinstance(self.content, dict) else None
        return int(delivery.get("count", 1)) if isinstance(delivery, dict) else 1

    def copy(self) -> Message:
        """A deep copy, bound to the same channel and layer."""
        return self.__class__(copy.deepcopy(self.content), self.channel.name, self.channel_layer)

    def __repr__(self) -> str:
        return f"<Message on {self.channel.name!r}>"
