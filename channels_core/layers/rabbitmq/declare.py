"""Declaring channel queues: once per connection, renewed before the broker's `x-expires` could fire."""

from __future__ import annotations

import time
from collections.abc import Callable

from .groups import EVICT_EXCHANGE
from .queues import queue_arguments, registry_arguments, registry_name


class Declarer:
    """Remembers which queues this connection declared and when; declares again when due.

    `arguments_for(queue)` gives a queue's `x-` arguments (its capacity may
    differ from the next one's). Not thread-safe: each connection owner has
    its own, used from the one thread that drives that connection.
    """

    def __init__(self, prefix: str, queue_expiry: float, arguments_for: Callable[[str], dict]) -> None:
        self.prefix = prefix
        self.queue_expiry = queue_expiry
        self.arguments_for = arguments_for
        self._declared: dict[str, float] = {}

    def reset(self) -> None:
        """Forget everything: a new connection, or the queues may have been deleted (flush)."""
        self._declared.clear()

    def forget(self, queue: str) -> None:
        """`queue` is gone (deleted by the broker): declare it again before its next use."""
        self._declared.pop(queue, None)

    def due(self, queue: str) -> bool:
        """True if `queue` was not declared on this connection within a third of `queue_expiry`."""
        declared = self._declared.get(queue)
        return declared is None or time.monotonic() - declared > self.queue_expiry / 3

    def declare(self, channel, queue: str) -> int:
        """Declare `queue` on pika `channel` and register its name for `flush`; its ready messages."""
        declared = channel.queue_declare(queue, durable=False, arguments=self.arguments_for(queue))
        registry = registry_name(self.prefix)
        # Every time (declarations are rare): a flush by any process may have deleted the registry.
        channel.queue_declare(registry, durable=False, arguments=registry_arguments(self.queue_expiry))
        channel.basic_publish("", registry, queue.encode("utf8"))
        self._declared[queue] = time.monotonic()
        return declared.method.message_count


def queue_arguments_for(expiry: float, queue_expiry: float, capacity_of: Callable[[str], int], prefix: str):
    """A `Declarer.arguments_for` from the layer's settings (`capacity_of` takes the channel queue name)."""

    def arguments_for(queue: str) -> dict:
        return queue_arguments(expiry, capacity_of(queue[len(prefix) :]), queue_expiry, prefix + EVICT_EXCHANGE)

    return arguments_for
