"""At-least-once channels in the in-memory layer (the `at_least_once` extension; settings in `.reliable`).

The same semantics as the Redis layer's, under the layer's one lock: a queue
entry taken from an at-least-once queue moves into `_alo_flight` with a
deadline (`time.monotonic()`), `ack` removes it, and every receive of that
queue first returns expired deliveries to the head of the queue (or, after
`max_deliveries`, to the dead-letter channel). A blocking receive on such a
queue wakes at least every `reliable.RECLAIM_INTERVAL` to do so.

Queue entries are the layer's `[deadline, channels, payload]` lists, with a
fourth item once delivered: the deliveries so far.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from . import names, reliable

logger = logging.getLogger("channels_core.layers.inmemory")


class InMemoryAtLeastOnce:
    """Mixin for `InMemoryChannelLayer`: the `AtLeastOnceExtension` methods and the hooks its send and receive call."""

    def _alo_setup(self, setting: Mapping[str, Any] | None) -> None:
        self._alo = reliable.Rules(setting)
        # queue name -> delivery id -> [redeliver at (monotonic), deliveries, payload, expiry deadline (time.time())]
        self._alo_flight: dict[str, dict[int, list]] = {}
        self._alo_ids = itertools.count(1)

    # -- the extension -----------------------------------------------------------

    def at_least_once_policy(self, channel: str) -> reliable.Policy | None:
        """The `reliable.Policy` of `channel`, or None when it is delivered at most once."""
        return self._alo.get(names.list_name(channel))

    def ack(self, channel: str, delivery_id: int | str) -> bool:
        """The consumer is done with this delivery: remove it. False if it was no longer in flight."""
        self._alo_policy(channel)
        with self._cond:  # type: ignore[attr-defined]
            return self._alo_flight.get(channel, {}).pop(int(delivery_id), None) is not None

    def touch(self, channel: str, delivery_ids: Iterable[int | str]) -> int:
        """Move these deliveries' deadlines `redeliver_after` seconds ahead; how many were still in flight."""
        policy = self._alo_policy(channel)
        deadline = time.monotonic() + policy.redeliver_after
        n = 0
        with self._cond:  # type: ignore[attr-defined]
            flight = self._alo_flight.get(channel, {})
            for delivery_id in delivery_ids:
                held = flight.get(int(delivery_id))
                if held is not None:
                    held[0] = deadline
                    n += 1
        return n

    def nack(self, channel: str, delivery_id: int | str, reason: str = "consumer failed") -> str:
        """Queue the message again now (`"requeued"`) or dead-letter it (`"dead"`); `"gone"` if not in flight."""
        policy = self._alo_policy(channel)
        with self._cond:  # type: ignore[attr-defined]
            held = self._alo_flight.get(channel, {}).pop(int(delivery_id), None)
            if held is None:
                return "gone"
            _, count, payload, expires = held
            if count >= policy.max_deliveries:
                self._alo_dead(channel, policy, count, payload, reason)
                return "dead"
            self._queues.setdefault(channel, deque()).append([expires, [channel], payload, count])  # type: ignore[attr-defined]
            self._cond.notify_all()  # type: ignore[attr-defined]
            return "requeued"

    # -- hooks of the layer (called with its lock held) -------------------------

    def _alo_expiry(self, qname: str) -> float | None:
        """The expiry (seconds) of messages sent to `qname` if it is at-least-once, else None."""
        policy = self._alo.get(qname) if self._alo else None
        return None if policy is None else policy.expiry

    def _alo_statistics(self, qname: str, stats: dict[str, float]) -> None:
        """`channel_statistics` of an at-least-once queue: its own expiry, and `messages_in_flight`."""
        queue = self._queues.get(qname)  # type: ignore[attr-defined]
        expiry = self._alo.get(qname).expiry
        stats["messages_max_age"] = max(0.0, time.time() - (queue[0][0] - expiry)) if queue else 0
        stats["messages_in_flight"] = len(self._alo_flight.get(qname, {}))

    def _alo_reclaim(self, qname: str, policy: reliable.Policy) -> None:
        """Return `qname`'s expired deliveries to the head of its queue, or dead-letter them."""
        flight = self._alo_flight.get(qname)
        if not flight:
            return
        now = time.monotonic()
        late = sorted(i for i, held in flight.items() if held[0] <= now)
        for delivery_id in reversed(late):  # appendleft in reverse: the oldest goes back first
            _, count, payload, expires = flight.pop(delivery_id)
            if count >= policy.max_deliveries:
                self._alo_dead(qname, policy, count, payload, "redelivered too often")
            else:
                self._queues.setdefault(qname, deque()).appendleft([expires, [qname], payload, count])  # type: ignore[attr-defined]

    def _alo_deliver(self, qname: str, policy: reliable.Policy, entry: list) -> bytes:
        """Put a queue entry in flight; the payload to hand out, with its delivery."""
        count = (entry[3] if len(entry) > 3 else 0) + 1
        delivery_id = next(self._alo_ids)
        held = [time.monotonic() + policy.redeliver_after, count, entry[2], entry[0]]
        self._alo_flight.setdefault(qname, {})[delivery_id] = held
        serializer = self.serializer  # type: ignore[attr-defined]
        message = serializer.loads(entry[2])
        message[reliable.DELIVERY_KEY] = {"id": delivery_id, "count": count}
        return serializer.dumps(message)

    def _alo_dead(self, qname: str, policy: reliable.Policy, count: int, payload: bytes, reason: str) -> None:
        if policy.dead_letter is None:
            logger.error("Dropped a message on %s after %d deliveries (%s)", qname, count, reason)
            return
        serializer = self.serializer  # type: ignore[attr-defined]
        message = reliable.dead_letter(serializer.loads(payload), qname, count, reason)
        self._push_uncapped(policy.dead_letter, serializer.dumps(message))  # type: ignore[attr-defined]
        logger.warning("Moved a message of %s to %s after %d deliveries (%s)", qname, policy.dead_letter, count, reason)

    def _alo_policy(self, channel: str) -> reliable.Policy:
        policy = self._alo.get(names.list_name(channel))
        if policy is None:
            raise ValueError(f"{channel!r} is not an at-least-once channel (no at_least_once pattern matches it)")
        return policy
