"""A consumer's sends go out when it returns (Channels 1.x consumer atomicity).

Whatever runs consumers (the worker, the test client) calls
`pending_message_store.start()` before a consumer and
`pending_message_store.flush()` after it, in the same thread. Between the
two, `Channel.send` and `Group.send` append to a per-thread buffer instead
of sending, unless called with `immediately=True`; so a consumer that raises
half-way sends nothing it had not meant to send before the error, and what
it sent reaches the layer in order.

    pending_message_store.start()
    try:
        consumer(message, **kwargs)
    finally:
        pending_message_store.flush()

The `consumer_started` / `consumer_finished` signals are sent around the
same run for the project's own receivers; the buffer does not depend on
them or on the order their receivers run in.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from .layers.backoff import Backoff, retry
from .layers.errors import ChannelFull

__all__ = ["FLUSH_RETRY_SECONDS", "PendingMessageStore", "pending_message_store"]

logger = logging.getLogger("channels_core")

FLUSH_RETRY_SECONDS = 2.0
"""How long a flush retries a full channel before it drops the message and counts it.

A full reply channel must never kill a worker: Channels 1.x raised
ChannelFull from the worker's `finally`.
"""


class Sender(Protocol):
    """What can be buffered: a `Channel` or a `Group` (a name, a layer, `send(content, immediately)`)."""

    name: str
    channel_layer: Any

    def send(self, content: dict, immediately: bool = False) -> None: ...


class PendingMessageStore:
    """Per-thread buffer of the sends a consumer makes while it runs."""

    def __init__(self) -> None:
        self._local = threading.local()
        self.dropped = 0
        """Messages dropped because their channel stayed full for `FLUSH_RETRY_SECONDS` (all threads)."""
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """True between `start()` and `flush()` (or `discard()`) in this thread."""
        return getattr(self._local, "messages", None) is not None

    @property
    def buffered(self) -> int:
        """How many sends this thread holds for the flush."""
        return len(getattr(self._local, "messages", None) or ())

    def start(self, **kwargs: Any) -> None:
        """Buffer this thread's sends from now on (any earlier buffer is forgotten)."""
        self._local.messages = []

    def append(self, sender: Sender, message: dict) -> None:
        """Keep `message` for `sender` until the flush."""
        self._local.messages.append((sender, message))

    def discard(self) -> None:
        """Stop buffering and forget what was buffered."""
        self._local.messages = None

    def flush(self, **kwargs: Any) -> int:
        """Stop buffering and send what was buffered, in order; returns how many were dropped.

        A full channel is retried for `FLUSH_RETRY_SECONDS`, then the message
        is dropped, logged and counted in `dropped`; any other error is logged.
        Never raises.
        """
        messages = getattr(self._local, "messages", None)
        self._local.messages = None
        dropped = 0
        for sender, message in messages or ():
            full = getattr(sender.channel_layer, "ChannelFull", ChannelFull)
            try:
                sent = retry(
                    lambda s=sender, m=message: s.send(m, immediately=True),
                    full,
                    Backoff(0.01, 0.2),
                    timeout=FLUSH_RETRY_SECONDS,
                )
            except Exception:
                logger.exception("Failed to send a buffered message to %s", sender.name)
                continue
            if not sent:
                dropped += 1
                with self._lock:  # several worker threads flush at once
                    self.dropped += 1
                    total = self.dropped
                logger.error(
                    "Dropped a message for %s: the channel stayed full for %ss (%d dropped so far)",
                    sender.name,
                    FLUSH_RETRY_SECONDS,
                    total,
                )
        return dropped


pending_message_store = PendingMessageStore()
"""The store `Channel.send` and `Group.send` buffer into (the Channels 1.x name)."""
