"""A thread-safe in-process channel layer for tests and `runserver`.

Messages are msgpack-encoded on send, so what a test sees is exactly what the
Redis layer would deliver (tuples become lists, a mutated dict after send
changes nothing, unserializable values fail at send time).
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence

from . import names
from .base import BaseChannelLayer
from .history import HistoryNotSupported, HistorySettings, Position, check_since, envelope, status_message
from .inmemory_presence import InMemoryPresence
from .inmemory_reliable import InMemoryAtLeastOnce
from .memory_history import MemoryHistory
from .order_book import OrderBook
from .reliable import RECLAIM_INTERVAL

_BLOCK_TIMEOUT = 5.0


class InMemoryChannelLayer(InMemoryPresence, InMemoryAtLeastOnce, BaseChannelLayer):
    """In-process ASGI 1.0 layer with groups, flush, statistics and batches.

    A message that expires unread removes its channel from every group, as
    the spec recommends. `local_only` tells `runworker` it cannot be shared
    between processes.
    """

    extensions = [
        "groups",
        "flush",
        "statistics",
        "batch",
        "ordering",
        "leases",
        "inspection",
        "queue_wait",
        "presence",
        "history",
        "at_least_once",
    ]
    local_only = True

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity=None,
        symmetric_encryption_keys=None,
        blocking_timeout: float = _BLOCK_TIMEOUT,
        group_history=None,
        at_least_once=None,
        **_ignored,
    ) -> None:
        super().__init__(expiry, group_expiry, capacity, channel_capacity, symmetric_encryption_keys)
        self.history_settings = HistorySettings(group_history)  # the `history` extension (see .history)
        self._history = MemoryHistory()
        self._alo_setup(at_least_once)  # at-least-once channels (see .inmemory_reliable)
        self.blocking_timeout = blocking_timeout
        self._cond = threading.Condition()
        # queue name -> deque of [deadline, channels, payload]; a group send puts
        # every member of one process queue in a single entry, as Redis does.
        self._queues: dict[str, deque] = {}
        self._groups: dict[str, dict[str, float]] = {}
        self._stats: dict[str, dict[str, int]] = {}
        self._closed = False
        self._orders = OrderBook(group_expiry)
        self._leases = _Leases()
        self._lease_known: set[str] = set()
        self._waits = threading.local()  # .last: the queue waits of this thread's last receive

    # -- sending ---------------------------------------------------------------

    def send(self, channel: str, message: dict) -> None:
        names.validate_channel_name(channel)
        payload = self.serializer.dumps(message)
        with self._cond:
            self._push(names.list_name(channel), [channel], [payload])

    def send_many(self, channel: str, messages: Sequence[dict]) -> None:
        names.validate_channel_name(channel)
        payloads = [self.serializer.dumps(m) for m in messages]
        if payloads:
            with self._cond:
                self._push(names.list_name(channel), [channel], payloads)

    def _push(self, qname: str, channels: list[str], payloads: list[bytes]) -> None:
        queue = self._queues.get(qname)
        if queue is None:
            queue = self._queues[qname] = deque()
        now = time.time()
        self._expire(queue, now)
        if len(queue) + len(payloads) > self.capacity_rules.get(qname):
            self._count(qname, "channel_full_count")
            raise self.ChannelFull(f"Channel {channels[0]!r} is full ({len(queue)} messages waiting)")
        deadline = now + (self._alo_expiry(qname) or self.expiry)
        for payload in payloads:
            queue.append([deadline, list(channels), payload])
        self._count(qname, "messages_count", len(payloads))
        self._cond.notify_all()

    def _count(self, name: str, field: str, n: int = 1) -> None:
        for key in (name, "#global#"):
            stats = self._stats.setdefault(key, {"messages_count": 0, "channel_full_count": 0})
            stats[field] += n

    def _expire(self, queue: deque, now: float) -> None:
        while queue and queue[0][0] <= now:
            _, channels, _ = queue.popleft()
            for members in self._groups.values():
                for channel in channels:
                    members.pop(channel, None)

    # -- receiving -------------------------------------------------------------

    def receive(self, channels: Iterable[str], block: bool = False):
        batch = self.receive_batch(channels, 1, block)
        return batch[0] if batch else (None, None)

    def receive_batch(
        self, channels: Iterable[str], max_messages: int = 100, block: bool = False, timeout: float | None = None
    ):
        wanted = names.validate_receive_channels(channels)
        deadline = time.monotonic() + (self.blocking_timeout if timeout is None else timeout)
        # At-least-once queues get no notify when a delivery's deadline passes: wake to reclaim.
        reclaim = self._alo and any(self._alo.get(q) for q in wanted)
        with self._cond:
            while True:
                got = self._pop(wanted, max_messages)
                if got or not block or self._closed:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, RECLAIM_INTERVAL) if reclaim else remaining)
        return [(channel, self.serializer.loads(payload)) for channel, payload in got]

    def _pop(self, wanted: list[str], max_messages: int) -> list[tuple[str, bytes]]:
        order = list(wanted)
        random.shuffle(order)
        now = time.time()
        got: list[tuple[str, bytes]] = []
        waits = self._waits.last = []
        for qname in order:
            policy = self._alo.get(qname) if self._alo else None
            if policy is not None:
                self._alo_reclaim(qname, policy)
            queue = self._queues.get(qname)
            if not queue:
                continue
            self._expire(queue, now)
            while queue and len(got) < max_messages:
                entry = queue[0]
                channel = entry[1].pop(0)
                got.append((channel, entry[2] if policy is None else self._alo_deliver(qname, policy, entry)))
                waits.append(max(0.0, now - (entry[0] - self.expiry)))  # sent at its deadline less the expiry
                if not entry[1]:
                    queue.popleft()
            if not queue:
                del self._queues[qname]
            if len(got) >= max_messages:
                break
        return got

    # -- groups ----------------------------------------------------------------

    def group_add(self, group: str, channel: str) -> None:
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        with self._cond:
            self._groups.setdefault(group, {})[channel] = time.time()

    def group_discard(self, group: str, channel: str) -> None:
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        with self._cond:
            members = self._groups.get(group)
            if members is not None:
                members.pop(channel, None)
                if not members:
                    del self._groups[group]

    def group_channels(self, group: str) -> list[str]:
        names.validate_group_name(group)
        with self._cond:
            return list(self._live_members(group))

    def _live_members(self, group: str) -> dict[str, float]:
        members = self._groups.get(group, {})
        cutoff = time.time() - self.group_expiry
        for channel in [c for c, added in members.items() if added < cutoff]:
            del members[channel]
        return members

    def send_group(self, group: str, message: dict) -> None:
        """Send to every member; full members are skipped and counted, never raised."""
        names.validate_group_name(group)
        rule = self.history_settings.rule_for(group)
        payload = self.serializer.dumps(message)
        by_queue: dict[str, list[str]] = {}
        with self._cond:
            now = time.time()
            if rule is not None:
                # Position and delivery under one lock: a join sees each message in history or live, never both.
                epoch, offset = self._history.append(group, rule, payload, now)
                payload = self.serializer.dumps(envelope(message, group, epoch, offset))
            for channel in list(self._live_members(group)):
                # Expire first: a member whose message expired unread is evicted, not sent to.
                self._expire(self._queues.get(names.list_name(channel), deque()), now)
            for channel in self._live_members(group):
                by_queue.setdefault(names.list_name(channel), []).append(channel)
            for qname, channels in by_queue.items():
                try:
                    self._push(qname, channels, [payload])
                except self.ChannelFull:
                    pass

    def history_join(self, group: str, channel: str, since: Position | str) -> None:
        """Add `channel` to `group` and, in the same step, queue what it missed after `since` and a status frame.

        See `channels_core.layers.history` for the frames; raises
        `HistoryNotSupported` when `group` keeps no history.
        """
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        since = check_since(since)
        rule = self.history_settings.rule_for(group)
        if rule is None:
            raise HistoryNotSupported(f"group {group!r} keeps no history: no group_history pattern matches it")
        with self._cond:
            now = time.time()
            self._groups.setdefault(group, {})[channel] = now
            found = self._history.recover(group, rule, since, now)
            for offset, stored in found.replay:
                message = envelope(self.serializer.loads(stored), group, found.epoch, offset)
                self._push_uncapped(channel, self.serializer.dumps(message))
            status = status_message(group, found.epoch, found.offset, found.recovered)
            self._push_uncapped(channel, self.serializer.dumps(status))

    # -- flush and statistics --------------------------------------------------

    def flush(self) -> None:
        with self._cond:
            self._history.clear()
            self._queues.clear()
            self._alo_flight.clear()
            self._groups.clear()
            self._presence_clear()
            self._stats.clear()
            self._leases = _Leases()
        self._orders = OrderBook(self.group_expiry)

    # -- per-connection ordering (the `ordering` extension, see .order_book) ---

    def order_claim(
        self, reply_channel: str, order: int, channel: str, message: dict, timeout: float, max_parked: int
    ) -> str:
        names.validate_channel_name(reply_channel)
        payload = self._park(channel, message)
        return self._orders.claim(reply_channel, int(order), payload, timeout, max_parked)

    def order_advance(self, reply_channel: str, order: int) -> tuple[str, dict] | None:
        return self._unpark(self._orders.advance(reply_channel, int(order)))

    def order_forget(self, reply_channel: str) -> None:
        self._orders.forget(reply_channel)

    # -- leases (the `leases` extension, see .contract.LeasesExtension) ----------

    def lease_renew(self, holder: str, ttl: float, info: dict | None = None) -> str:
        names.validate_channel_name(holder)
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, not {ttl!r}")
        info = self.serializer.loads(self.serializer.dumps(info or {}))
        with self._cond:
            leases = self._leases
            state = "held"
            if holder not in leases.expires:
                if leases.swept.pop(holder, None) is not None:
                    state = "swept"
                elif holder in self._lease_known:
                    state = "lost"
            leases.expires[holder] = time.monotonic() + ttl
            leases.info[holder] = info
            self._lease_known.add(holder)
            return state

    def lease_track(self, holder: str, reply_channel: str, channel: str, message: dict) -> None:
        for name in (holder, reply_channel, channel):
            names.validate_channel_name(name)
        payload = self.serializer.dumps(message)
        with self._cond:
            self._leases.conns.setdefault(holder, {})[reply_channel] = (channel, payload)

    def lease_release(self, holder: str, reply_channel: str, channel: str, message: dict) -> bool:
        for name in (holder, reply_channel, channel):
            names.validate_channel_name(name)
        payload = self.serializer.dumps(message)
        with self._cond:
            if self._leases.conns.get(holder, {}).pop(reply_channel, None) is None:
                return False
            self._push_uncapped(channel, payload)
            return True

    def lease_end(self, holder: str) -> None:
        names.validate_channel_name(holder)
        with self._cond:
            leases = self._leases
            for table in (leases.expires, leases.info, leases.conns, leases.swept):
                table.pop(holder, None)
            if leases.sweeper is not None and leases.sweeper[0] == holder:
                leases.sweeper = None  # a sweeper that stops hands the election over at once
            self._lease_known.discard(holder)

    def lease_connections(self, holder: str) -> list[str]:
        names.validate_channel_name(holder)
        with self._cond:
            return list(self._leases.conns.get(holder, {}))

    def lease_holders(self) -> dict[str, dict]:
        now = time.monotonic()
        with self._cond:
            leases = self._leases
            return {h: dict(leases.info.get(h, {})) for h, expires in leases.expires.items() if expires > now}

    def lease_sweep(self, sweeper: str, ttl: float) -> list[str]:
        """Send the disconnects of every expired lease if `sweeper` holds the election (see the contract)."""
        if not isinstance(sweeper, str) or not sweeper:
            raise TypeError(f"sweeper must be a non-empty str, not {sweeper!r}")
        self.last_sweep: dict[str, int] = {}
        now = time.monotonic()
        with self._cond:
            leases = self._leases
            if leases.sweeper is not None and leases.sweeper[0] != sweeper and leases.sweeper[1] > now:
                return []
            leases.sweeper = (sweeper, now + ttl)
            for holder in [h for h, when in leases.swept.items() if now - when > 86400]:
                del leases.swept[holder]  # tombstones are kept a day, as in Redis
            dead = [holder for holder, expires in leases.expires.items() if expires <= now]
            for holder in dead:
                sent = 0
                for reply_channel, (channel, payload) in leases.conns.pop(holder, {}).items():
                    message = self.serializer.loads(payload)
                    if "order" in message:
                        message["order"] = self._orders.next_order(reply_channel)
                    self._push_uncapped(channel, self.serializer.dumps(message))
                    sent += 1
                del leases.expires[holder]
                leases.info.pop(holder, None)
                leases.swept[holder] = now
                self.last_sweep[holder] = sent
            self._presence_sweep()  # the swept holders' presence records and group memberships
            return dead

    def _push_uncapped(self, channel: str, payload: bytes) -> None:
        """Queue a disconnect past the channel's capacity (bounded by the number of connections)."""
        queue = self._queues.setdefault(names.list_name(channel), deque())
        queue.append([time.time() + self.expiry, [channel], payload])
        self._count(names.list_name(channel), "messages_count")
        self._cond.notify_all()

    def global_statistics(self) -> dict[str, int]:
        with self._cond:
            return dict(self._stats.get("#global#", {"messages_count": 0, "channel_full_count": 0}))

    def channel_statistics(self, channel: str) -> dict[str, float]:
        names.validate_channel_name(channel)
        qname = names.list_name(channel)
        with self._cond:
            stats: dict[str, float] = dict(self._stats.get(qname, {"messages_count": 0, "channel_full_count": 0}))
            queue = self._queues.get(qname) or ()
            stats["messages_pending"] = len(queue)
            stats["messages_max_age"] = max(0.0, time.time() - (queue[0][0] - self.expiry)) if queue else 0
            if self._alo and self._alo.get(qname):
                self._alo_statistics(qname, stats)  # its own expiry, and what is in flight
            return stats

    # -- for operators (the `inspection` and `queue_wait` extensions) -----------

    def inspect_queues(self, limit: int = 1000) -> list[dict]:
        """The non-empty queues, fullest first (see `contract.InspectionExtension`); expired messages do not count.

        `pending` counts queue entries, as capacity does: a group send to
        several sockets of one process is one entry.
        """
        now = time.time()
        out = []
        with self._cond:
            for qname, queue in self._queues.items():
                # Read-only: skip the expired head rather than expire it (that would evict group members).
                live = [entry[0] for entry in queue if entry[0] > now]
                if live:
                    out.append(
                        {
                            "channel": qname,
                            "pending": len(live),
                            "oldest_age": max(0.0, now - (live[0] - self.expiry)),
                            "capacity": self.capacity_rules.get(qname),
                        }
                    )
        out.sort(key=lambda q: (-q["pending"], -q["oldest_age"], q["channel"]))
        return out[: max(0, limit)]

    def inspect_groups(self, limit: int = 1000) -> list[dict]:
        """The groups with live members, largest first (see `contract.InspectionExtension`)."""
        cutoff = time.time() - self.group_expiry
        with self._cond:
            sizes = [
                (group, sum(1 for added in members.values() if added >= cutoff))
                for group, members in self._groups.items()
            ]
        out = [{"group": group, "members": n} for group, n in sizes if n]
        out.sort(key=lambda g: (-g["members"], g["group"]))
        return out[: max(0, limit)]

    def last_queue_waits(self) -> list[float]:
        """Seconds each message of this thread's last `receive`/`receive_batch` waited, in order."""
        return list(getattr(self._waits, "last", ()))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _Leases:
    """The in-memory layer's lease state (replaced whole by `flush`, which makes known holders "lost")."""

    def __init__(self) -> None:
        self.expires: dict[str, float] = {}  # holder -> time.monotonic() deadline
        self.info: dict[str, dict] = {}
        self.conns: dict[str, dict[str, tuple[str, bytes]]] = {}  # holder -> reply channel -> (channel, payload)
        self.swept: dict[str, float] = {}
        self.sweeper: tuple[str, float] | None = None
