"""`Message`, and consumer atomicity: sends made inside a consumer go out when it ends."""

from __future__ import annotations

import copy
import logging
import threading
import time
from typing import Any

from .layers.errors import ChannelFull

logger = logging.getLogger("channels_core")

# ChannelFull on flush is retried for this long, then the message is dropped and counted:
# a full reply channel must never kill a worker (Channels 1.x raised from the worker's finally).
FLUSH_RETRY_SECONDS = 2.0


class Message:
    """One message handed to a consumer: dict-like content plus its channel and reply channel."""

    def __init__(self, content: dict, channel_name: str, channel_layer: Any) -> None:
        from .channel import Channel

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

    def copy(self) -> Message:
        """A deep copy, bound to the same channel and layer."""
        return self.__class__(copy.deepcopy(self.content), self.channel.name, self.channel_layer)

    def __repr__(self) -> str:
        return f"<Message on {self.channel.name!r}>"


class PendingMessageStore:
    """Per-thread buffer of sends made while a consumer runs."""

    def __init__(self) -> None:
        self._local = threading.local()
        self.dropped = 0

    @property
    def active(self) -> bool:
        return getattr(self._local, "messages", None) is not None

    def start(self, **kwargs: Any) -> None:
        self._local.messages = []

    def append(self, sender: Any, message: dict) -> None:
        self._local.messages.append((sender, message))

    def discard(self) -> None:
        self._local.messages = None

    def flush(self, **kwargs: Any) -> None:
        """Send what the consumer sent, in order; ChannelFull is retried briefly, then dropped and logged."""
        messages = getattr(self._local, "messages", None)
        self._local.messages = None
        for sender, message in messages or ():
            full = getattr(sender.channel_layer, "ChannelFull", ChannelFull)
            deadline = time.monotonic() + FLUSH_RETRY_SECONDS
            delay = 0.01
            while True:
                try:
                    sender.send(message, immediately=True)
                    break
                except full:
                    if time.monotonic() >= deadline:
                        self.dropped += 1
                        logger.error(
                            "Dropped a message for %s: the channel stayed full for %ss (%d dropped so far)",
                            sender.name,
                            FLUSH_RETRY_SECONDS,
                            self.dropped,
                        )
                        break
                    time.sleep(delay)
                    delay = min(delay * 2, 0.2)
                except Exception:
                    logger.exception("Failed to send a buffered message to %s", sender.name)
                    break


pending_message_store = PendingMessageStore()
