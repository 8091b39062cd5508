"""The worker's side of at-least-once channels: hold, keep alive, then ack or nack each delivery.

A message received on an at-least-once channel (`channels_core.layers.reliable`)
is in flight until the worker says what became of it:

- the consumer returned (or denied the connection, or raised ConsumeLater,
  whose requeued copy is a new message): `ack`, the message is gone;
- the consumer raised: `nack`, the message is queued again at the tail with
  its delivery count raised, and after `max_deliveries` it goes to the
  dead-letter channel; a failed run counts as a delivery, so a consumer that
  always fails cannot loop for ever;
- the message could not be routed or is malformed: `ack` (running it again
  would fail the same way; the worker logged it);
- the process died (SIGKILL, OOM, a power cut): nothing; its deliveries'
  deadlines pass and the layer hands them out again.

While a consumer runs (and while prefetched messages wait their turn), one
daemon thread per process `touch`es every delivery the process holds every
third of the shortest `redeliver_after`, so a job longer than
`redeliver_after` is not handed to a second worker while the first is alive.
Acks and touches go over the layer's connection pool, never over a
connection a blocking receive holds: a receive in one thread never delays an
ack in another, and each thread acks before it receives again.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from channels_core.layers.backoff import Backoff, retry
from channels_core.layers.contract import supports
from channels_core.layers.errors import LayerConnectionError
from channels_core.layers.reliable import delivery_of

logger = logging.getLogger("worker")

_MIN_HEARTBEAT = 0.05
_ACK_TRIES = 5


class Deliveries:
    """The at-least-once deliveries one process holds, touched by a heartbeat thread until acked."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self._held: dict[tuple[str, Any], float] = {}  # (channel, delivery id) -> redeliver_after
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.acked = 0
        self.nacked = 0

    def delivery(self, channel: str, content: Any) -> Any:
        """The delivery id of a message taken from an at-least-once channel, else None."""
        found = delivery_of(content)
        if found is None or self.layer.at_least_once_policy(channel) is None:
            return None
        return found[0]

    def hold(self, channel: str, delivery_id: Any) -> None:
        """Keep this delivery alive until `finish`."""
        policy = self.layer.at_least_once_policy(channel)
        with self._lock:
            self._held[(channel, delivery_id)] = policy.redeliver_after
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._beat, name="at-least-once-heartbeat", daemon=True)
                self._thread.start()

    def finish(self, channel: str, delivery_id: Any, failed: bool) -> None:
        """Ack (or, when the consumer raised, nack) one delivery; a layer outage is retried a few times."""
        with self._lock:
            self._held.pop((channel, delivery_id), None)
        call = self.layer.nack if failed else self.layer.ack
        try:
            ok = retry(lambda: call(channel, delivery_id), LayerConnectionError, _backoff(), tries=_ACK_TRIES)
        except Exception:
            logger.exception("Could not %s a message on %s", "nack" if failed else "ack", channel)
            ok = True  # logged; the delivery's deadline decides what happens next
        if failed:
            self.nacked += 1
        else:
            self.acked += 1
        if not ok:
            logger.warning(
                "Could not %s a message on %s (the layer is unreachable): it will be delivered again",
                "nack" if failed else "ack",
                channel,
            )

    def _beat(self) -> None:
        while True:
            with self._lock:
                if not self._held:
                    self._thread = None
                    return
                interval = max(_MIN_HEARTBEAT, min(self._held.values()) / 3)
                by_channel: dict[str, list[Any]] = {}
                for channel, delivery_id in self._held:
                    by_channel.setdefault(channel, []).append(delivery_id)
            self._wake.wait(interval)
            for channel, ids in by_channel.items():
                try:
                    self.layer.touch(channel, ids)
                except Exception as exc:  # a Redis outage: the next beat tries again
                    logger.debug("Touching %d deliveries on %s failed: %s", len(ids), channel, exc)


def _backoff() -> Backoff:
    return Backoff(0.05, 0.5)


_registry: dict[tuple[int, int], Deliveries] = {}
_registry_lock = threading.Lock()


def deliveries_for(layer: Any) -> Deliveries | None:
    """The process's `Deliveries` for `layer` (one for all of a worker group's threads), or None without
    the `at_least_once` extension."""
    if not supports(layer, "at_least_once"):
        return None
    key = (os.getpid(), id(layer))
    with _registry_lock:
        found = _registry.get(key)
        if found is None:
            found = _registry[key] = Deliveries(layer)
        return found
