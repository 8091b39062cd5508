"""The reply reader: one thread that blocks on this process's `prefix!` channel.

Every reply for every client of this server process arrives on one
process channel, read with a blocking receive (never a timer poll) in a
dedicated thread and handed to the reactor in batches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("interface_server.replies")

Batch = list[tuple[str, dict]]


class ReplyReader(threading.Thread):
    """Reads `prefix!` and calls `deliver(batch)` in the reactor thread."""

    def __init__(self, layer: Any, prefix: str, deliver: Callable[[Batch], None], call_in_reactor: Callable) -> None:
        super().__init__(name="reply-reader", daemon=True)
        self.layer = layer
        self.prefix = prefix
        self.deliver = deliver
        self.call_in_reactor = call_in_reactor
        self.stopping = threading.Event()
        self.batched = "batch" in getattr(layer, "extensions", ()) and hasattr(layer, "receive_batch")

    def run(self) -> None:
        backoff = 0.05
        while not self.stopping.is_set():
            try:
                batch = self._receive()
            except Exception as exc:
                # A layer that raises from a blocking receive (not ours: it retries itself).
                logger.warning("Reading replies from %s failed (%s); retrying in %.2fs", self.prefix, exc, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            if batch:
                self.call_in_reactor(self.deliver, batch)

    def _receive(self) -> Batch:
        if self.batched:
            return self.layer.receive_batch([self.prefix], 100, block=True)
        channel, message = self.layer.receive([self.prefix], block=True)
        return [(channel, message)] if channel is not None else []

    def stop(self, timeout: float = 0) -> None:
        self.stopping.set()
        if timeout:
            deadline = time.monotonic() + timeout
            self.join(max(0.0, deadline - time.monotonic()))
