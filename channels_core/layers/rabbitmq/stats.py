"""The `statistics` counters on RabbitMQ: each process counts in memory and keeps its totals in a queue of its own.

AMQP has no counters and no atomic read-modify-write, so the layer-wide
counts are kept the way the IPC layer keeps them in files:

- each process counts its sends (`messages_count`) and refusals
  (`channel_full_count`), per channel queue and in total, in memory;
- at most once a second (from `send`, or from the receiving thread's
  housekeeping) and at `close()` it publishes its whole totals, one msgpack
  message, to its own *snapshot queue* `prefix#s:<host>.<pid>.<random>`,
  declared with `x-max-length` 1: the broker keeps only the newest snapshot
  (drop-head), so the queue never grows;
- every snapshot queue's name is appended to `prefix#sregistry` when the
  queue is declared (AMQP cannot list queues);
- a reader takes the lock `prefix#lock:#stats` (an exclusive queue: one
  connection at a time; the broker frees it if the holder dies), gets every
  registry entry and every snapshot unacknowledged, then closes its channel,
  which puts them all back where they were, and adds its own live counts.

So the figures are exact for the reading process and up to about a second
late for the others; a process killed before it published loses its last
second of counts. A stopped process's last snapshot stays (its counts are
history) until `flush`, which deletes every snapshot queue and the
registry. Another process learns of a flush at its next snapshot (the
publish comes back unroutable: its queue is gone) and starts again from
zero, losing what it counted between the flush and then (up to a second).

Per channel the counts are kept under the channel queue's name, with every
`x?random` reply channel counted as `x?` (as on Redis), so unique reply
channels do not grow the snapshots. A snapshot holds every channel queue
name the process sent to: its size grows with the application's channel
names, not with its traffic.

`messages_pending` is the queue's ready count (a passive declare), which
leaves out what receiving processes hold in their prefetch buffers (see
`.receiver`). `messages_max_age` is not offered: AMQP cannot look at a
queue's oldest message without taking it (and a get followed by a requeue
would let a consumer overtake it), and RabbitMQ reports no head age without
the optional management plugin.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import msgpack
import pika.exceptions as pexc

from .groups import ACCESS_REFUSED, LOCK, NOT_FOUND, RESOURCE_LOCKED

GLOBAL = "#global#"
SNAPSHOT = "#s:"
STATS_REGISTRY = "#sregistry"
STATS_LOCK = LOCK + "#stats"
PUBLISH_INTERVAL = 1.0


def stats_name(list_name: str) -> str:
    """The counters' key of channel queue `list_name`: `x?random` reply channels all count under `x?`."""
    mark = list_name.find("?")
    return list_name if mark < 0 else list_name[: mark + 1]


class StatsBook:
    """This process's counts, its snapshot queue, and the reading of everyone's (see the module docstring)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self.queue = f"{self.prefix}{SNAPSHOT}{socket.gethostname()}.{self._pid}.{uuid.uuid4().hex[:8]}"
        self._counts: dict[str, list[int]] = {}
        self._dirty = False
        self._declared = False
        self._next_publish = 0.0

    def count(self, name: str, messages: int = 0, full: int = 0) -> None:
        """Add to channel queue `name`'s counters and the global ones."""
        with self._lock:
            if os.getpid() != self._pid:
                self._reset()  # a forked child counts its own sends, not its parent's again
            for key in (stats_name(name), GLOBAL):
                counts = self._counts.get(key)
                if counts is None:
                    counts = self._counts[key] = [0, 0]
                counts[0] += messages
                counts[1] += full
            self._dirty = True

    @property
    def dirty(self) -> bool:
        """True if this process counted something it has not published yet."""
        return self._dirty

    def due(self) -> bool:
        """True if there are counts to publish and the last snapshot is a second old."""
        return self._dirty and time.monotonic() >= self._next_publish

    def publish(self, channel) -> None:
        """Publish this process's totals to its snapshot queue on pika confirm-mode `channel` (hold its lock)."""
        with self._lock:
            if not self._dirty or os.getpid() != self._pid:
                return
            body = msgpack.packb(self._counts)
            self._dirty = False
            self._next_publish = time.monotonic() + PUBLISH_INTERVAL
        if not self._declared:
            channel.queue_declare(self.queue, durable=False, arguments={"x-max-length": 1})
            channel.queue_declare(self.prefix + STATS_REGISTRY, durable=False)
            channel.basic_publish("", self.prefix + STATS_REGISTRY, self.queue.encode("utf8"))
            self._declared = True
        try:
            channel.basic_publish("", self.queue, body, mandatory=True)
        except pexc.UnroutableError:
            # Another process flushed the layer (the queue is gone): what was counted before is history.
            with self._lock:
                self._counts = {}
                self._dirty = False
                self._declared = False

    def forget(self) -> None:
        """After this process flushed: count from zero, in a new snapshot queue."""
        with self._lock:
            self._reset()

    def read(self, channel_of) -> dict[str, list[int]] | None:
        """Everyone's counts summed (`key -> [messages, full]`); None if another process holds the lock.

        `channel_of()` gives a channel of the publishing connection (a new
        one if the last was closed). The registry entries and snapshots are
        held unacknowledged on it and go back to their queues when it is
        closed, before the lock is released.
        """
        lock = self.prefix + STATS_LOCK
        side = channel_of()
        try:
            side.queue_declare(lock, exclusive=True, auto_delete=True)
        except pexc.ChannelClosedByBroker as exc:
            if exc.reply_code in (RESOURCE_LOCKED, ACCESS_REFUSED):
                return None
            raise
        with self._lock:
            totals = {key: list(counts) for key, counts in self._counts.items()}
        try:
            side.queue_declare(self.prefix + STATS_REGISTRY, durable=False)
            names: set[str] = set()
            while True:  # a bounded read of the registry: one entry per snapshot queue declared
                method, _, body = side.basic_get(self.prefix + STATS_REGISTRY, auto_ack=False)
                if method is None:
                    break
                names.add(body.decode("utf8", "replace"))
            names.discard(self.queue)
            for name in sorted(names):
                try:
                    method, _, body = side.basic_get(name, auto_ack=False)
                except pexc.ChannelClosedByBroker as exc:
                    if exc.reply_code != NOT_FOUND:
                        raise
                    return None  # flushed meanwhile: the caller reads again
                if method is not None:
                    for key, counts in msgpack.unpackb(body, raw=False).items():
                        mine = totals.setdefault(key, [0, 0])
                        mine[0] += counts[0]
                        mine[1] += counts[1]
        finally:
            if side.is_open:
                side.close()  # every registry entry and snapshot held goes back to its queue
            channel_of().queue_delete(lock)  # only then: the next reader finds them all
        return totals


def flush_stats(channel, prefix: str) -> int:
    """Delete every snapshot queue named in the registry, then the registry; the number of queues deleted."""
    registry = prefix + STATS_REGISTRY
    channel.queue_declare(registry, durable=False)
    names: set[str] = set()
    while True:
        method, _, body = channel.basic_get(registry, auto_ack=True)
        if method is None:
            break
        name = body.decode("utf8", "replace")
        if name.startswith(prefix + SNAPSHOT):
            names.add(name)
    for name in sorted(names):
        channel.queue_delete(name)
    channel.queue_delete(registry)
    return len(names)
