"""`IPCChannelLayer`: a channel layer for the processes of one machine, with no broker process.

Design (and why)
----------------
Everything lives under `/dev/shm/<prefix>.ipc/` (tmpfs: POSIX shared memory,
the same file system `shm_open` uses) plus named POSIX semaphores, the bells:
one per process and set of channels its threads wait on, taken in turns
(`/dev/shm/sem.<prefix>.bell.<pid>.s<n>`), and one per thread reading a
single-reader channel (`/dev/shm/sem.<prefix>.bell.<pid>.<tid>`):

- a queue is a directory and a message one file in it, written aside and
  `rename()`d in (`.queues`): FIFO by name, expiry and channel in the name,
  claimed by the reader whose `unlink()` of it succeeds;
- exact capacity takes an `flock` on the queue directory while counting and
  renaming; a group's membership file is replaced whole under an `flock`
  of its lock file (`.groups`);
- a blocking receive over any number of channels waits on one semaphore,
  which senders post after renaming a message in (`.doorbell`);
- per-connection ordering (`.ordering`) and leases (`.leases`) are small
  files changed the same way; statistics are per-process files (`.stats`).

The one lock kind used is `flock`, which the kernel releases when its holder
dies, however it dies: a SIGKILLed process never leaves others waiting
("Semaphore appears to be deadlocked" was asgi_ipc's failure, from a
`posix_ipc.Semaphore` used as a lock, which nothing releases when its holder
dies). Every change others can see is one `rename()`, which is atomic, so a
process killed between two steps leaves either the old state or the new one,
plus at worst an unreferenced file in `t/`. Semaphores are only used
as bells, never held.

Not chosen: one POSIX message queue per channel. Linux caps a queue at
`/proc/sys/fs/mqueue/msg_max` messages of `msgsize_max` bytes, 10 and 8,192
by default (as on the machine this was written on), far below a capacity of
100 and 1 MiB messages, and raising them needs root. Not chosen either: one
`mmap` ring buffer per queue with a lock inside it, which needs robust
futexes that Python cannot reach, or a lock held while copying a 1 MiB
message (the asgi_ipc design).

Costs: a send is about ten system calls (write a file, open/lock/stat the
queue, rename, list waiters, post bells); a receive a `stat` per empty queue
and three calls per message. No process other than the users of the layer.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence

from .. import names, reliable
from ..base import BaseChannelLayer
from ..capacity import Rule
from .cleanup import PREFIX_RE, flush_prefix, root_of, shared_objects, sweep_dead
from .doorbell import Bells, Slot, posix_ipc
from .events import IPCEventReceiver
from .groups import Groups
from .leases import SharedLeases
from .ordering import SharedOrderBook
from .presence import IPCPresence
from .queues import Queues, tmpfs_counts_entries
from .stats import GLOBAL, Stats

SWEEP_INTERVAL = 60.0
"""Seconds between sweeps of expired messages in queues nobody reads (see `IPCChannelLayer.sweep`)."""

MAX_TURNS = 64
"""Sets of channels (without a single-reader one) per process whose threads share a bell."""


class _Turn:
    """The threads of one process waiting on one set of channels: one at a time, on one shared bell.

    `unseen` bounds the messages that may wait in the channels, so that a thread taking the turn looks
    only when one may (None: unknown, look). Every message renamed into a queue posts the bell once,
    after the rename. A look that got fewer than it asked for saw every queue after the bell was last
    cleared: 0 then, and each ring cleared or waited for since adds one. A look that got as many as it
    asked for takes those off. If it took a message whose ring had not come yet, that ring comes later
    and makes the next thread look: the count may run high (a look for nothing) but a waiting message
    always has a ring that is counted or still to come.
    """

    def __init__(self, slot: Slot) -> None:
        self.lock = threading.Lock()
        self.slot = slot
        self.unseen: int | None = None

    def count(self, rung: int) -> None:
        """Rings cleared or waited for (-1: registrations made, what came before them is unknown)."""
        if rung < 0:
            self.unseen = None
        elif self.unseen is not None:
            self.unseen += rung

    def took(self, got: int, asked: int) -> None:
        if got < asked:
            self.unseen = 0
        elif self.unseen is not None:
            self.unseen = max(self.unseen - got, 0)


class IPCChannelLayer(IPCPresence, BaseChannelLayer):
    """ASGI 1.0 channel layer over tmpfs files, `flock` and POSIX semaphores (see the module docstring).

    `CONFIG` keys: `prefix` ("asgi": names every object the layer creates),
    `expiry` (60 s), `group_expiry` (86,400 s), `capacity` (100),
    `channel_capacity` (per-channel overrides), `channel_memory` (100 MiB:
    the bytes of unexpired messages one queue may hold, over which `send`
    raises `ChannelFull`), `group_memory` (1 MiB: the size of one group's
    membership map, over which `group_add` raises `ChannelFull`),
    `blocking_timeout` (5 s: how long a blocking receive waits before
    returning `(None, None)`).
    """

    extensions = [
        "groups",
        "flush",
        "batch",
        "statistics",
        "inspection",
        "queue_wait",
        "ordering",
        "leases",
        "event_receiver",
        "presence",
    ]

    def __init__(
        self,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Rule, int] | None = None,
        channel_memory: int = 100 * 1024 * 1024,
        group_memory: int = 1024 * 1024,
        blocking_timeout: float = 5,
        symmetric_encryption_keys=None,
        at_least_once=None,
    ) -> None:
        reliable.refuse("IPCChannelLayer", at_least_once)
        if posix_ipc is None:
            raise ImportError("IPCChannelLayer needs the 'posix_ipc' package: pip install 'channels-core[ipc]'")
        super().__init__(expiry, group_expiry, capacity, channel_capacity, symmetric_encryption_keys)
        if not isinstance(prefix, str) or not PREFIX_RE.fullmatch(prefix):
            raise ValueError(f"prefix must be 1 to 64 of A-Z a-z 0-9 _ -, not {prefix!r}")
        if channel_memory < 1024 * 1024 + 1024:
            raise ValueError(f"channel_memory must hold at least one 1 MiB message, not {channel_memory!r}")
        if blocking_timeout <= 0:
            raise ValueError(f"blocking_timeout must be positive, not {blocking_timeout!r}")
        self.prefix = prefix
        self.channel_memory = channel_memory
        self.group_memory = group_memory
        self.blocking_timeout = blocking_timeout
        self.root = root_of(prefix)
        os.makedirs(self.root, exist_ok=True)
        sweep_dead(prefix)
        self._queues = Queues(self.root, tmpfs_counts_entries(self.root))
        self._queues.ensure()
        self._bells = Bells(self.root, prefix)
        self._groups = Groups(self.root, self._queues.tmp_path, group_expiry, group_memory)
        self._stats = Stats(self.root, self._queues.tmp_path)
        self._orders = SharedOrderBook(self.root, self._queues.tmp_path, group_expiry)
        self._leases = SharedLeases(self.root, self._queues.tmp_path)
        self.last_sweep: dict[str, int] = {}
        self._turn = itertools.count()
        self._closed = False
        self._local = threading.local()
        self._turns: dict[tuple[str, ...], _Turn] = {}
        self._turns_lock = threading.Lock()
        self._turns_pid = os.getpid()
        self._next_sweep = time.monotonic() + min(SWEEP_INTERVAL, self.expiry)

    # -- sending -------------------------------------------------------------------

    def send(self, channel: str, message: dict) -> None:
        """Queue `message` on `channel`; raises `ChannelFull` or `MessageTooLarge`, never blocks."""
        self.send_many(channel, [message])

    def send_many(self, channel: str, messages: Sequence[dict]) -> None:
        """Queue `messages` on `channel` in order, all or none (`ChannelFull`: none was sent)."""
        names.validate_channel_name(channel)
        if channel.endswith("?"):
            raise TypeError(f"Cannot send to {channel!r}: a '?' channel needs its random part from new_channel()")
        payloads = [self.serializer.dumps(message) for message in messages]
        if payloads and not self._put(channel, payloads):
            raise self.ChannelFull(f"Channel {channel!r} is full")

    def _put(self, channel: str, payloads: list[bytes]) -> bool:
        if time.monotonic() >= self._next_sweep:
            self.sweep()
        queue = names.list_name(channel)
        items = [(channel, self._queues.write_tmp(payload), len(payload)) for payload in payloads]
        if not self._queues.put(queue, items, self.expiry, self.get_capacity(channel), self.channel_memory):
            self._stats.count(queue, full=1)
            return False
        self._stats.count(queue, messages=len(items))
        self._bells.ring(queue, len(items))
        return True

    # -- receiving -----------------------------------------------------------------

    def receive(self, channels: Iterable[str], block: bool = False) -> tuple[str | None, dict | None]:
        """`(channel, message)` from the first of `channels` with one, or `(None, None)`.

        With `block=True` waits up to `blocking_timeout` on one semaphore that
        a send to any of `channels` posts.
        """
        got = self.receive_batch(channels, 1, block)
        return got[0] if got else (None, None)

    def receive_batch(
        self, channels: Iterable[str], max_messages: int = 100, block: bool = False, timeout: float | None = None
    ) -> list[tuple[str, dict]]:
        """Up to `max_messages` waiting messages of `channels`, maybe none.

        With `block=True` waits for the first one on one semaphore that a send
        to any of `channels` posts, up to `timeout` (default `blocking_timeout`;
        0 or less: no wait).
        """
        queues = list(dict.fromkeys(names.validate_receive_channels(channels)))
        waits = block and (timeout is None or timeout > 0)
        turn = self._turn_for(queues) if waits else None
        if turn is None or turn.unseen != 0:
            # Read without the turn's lock, the count only decides whether to look now: a receive that
            # takes turns skips the look when none may wait (else it listed every queue again after each
            # message handled), and the turn looks again under its lock anyway.
            got = self._take(queues, max_messages)
            if got or not block:
                return got
        wait = self.blocking_timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        # The threads of this process that wait on one set of channels take turns: one waits on the set's
        # shared bell, the others queue behind it on a thread lock. Before this each thread had its own bell
        # on the same queues and a send posted them all: every thread of a `runworker --threads N` woke,
        # fought over the GIL and listed the queues, and one took the message; and the next thread to wait
        # listed them all again, as its own bell counted every send made while it was busy. With one bell
        # the next thread only looks if a message may wait (`_Turn.unseen`; measured: 0.3 ms off a WebSocket
        # echo at N = 4). Sets with a single-reader channel are one thread's: those keep a bell per thread.
        while not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if turn is None:
                bell, _ = self._bells.prepare(queues)
                got = self._take(queues, max_messages)
                if got:
                    return got
                self._bells.wait(bell, deadline - time.monotonic())
                continue
            if not turn.lock.acquire(timeout=remaining):
                break
            try:
                if self._closed:
                    break  # close() woke the thread that held the turn: no new bell after close
                bell, rung = self._bells.prepare(queues, turn.slot)
                turn.count(rung)
                if turn.unseen != 0:
                    got = self._take(queues, max_messages)
                    turn.took(len(got), max_messages)
                    if got:
                        return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if self._bells.wait(bell, remaining):
                    turn.count(1)
                    if self._closed:
                        break  # close() rang: take nothing more
                    # Look at once, still holding the turn: the bell is cleared by whoever waits next.
                    got = self._take(queues, max_messages)
                    turn.took(len(got), max_messages)
                    if got:
                        return got
            finally:
                turn.lock.release()
        return []

    def _turn_for(self, queues: list[str]) -> _Turn | None:
        """The turn the threads of this process take to wait on `queues` (see `receive_batch`), if shared."""
        key = tuple(queues)
        if self._turns_pid != os.getpid():
            # A fork copies a lock another thread held as held for ever: a child starts with its own turns.
            self._turns, self._turns_lock, self._turns_pid = {}, threading.Lock(), os.getpid()
        turn = self._turns.get(key)
        if turn is None:
            if any("?" in queue for queue in queues):
                return None  # a single-reader channel: one thread, and a set used once
            with self._turns_lock:
                turn = self._turns.get(key)
                if turn is None:
                    if len(self._turns) >= MAX_TURNS:
                        return None  # each shared bell lives until close(): keep them few
                    turn = self._turns[key] = _Turn(self._bells.shared_slot())
        return turn

    def _take(self, queues: list[str], max_messages: int) -> list[tuple[str, dict]]:
        # Start at a different queue each call, so one busy channel cannot starve the others.
        start = next(self._turn) % len(queues)
        out: list[tuple[str, dict]] = []
        waits: list[float] = []
        for queue in queues[start:] + queues[:start]:
            taken = self._queues.take(queue, max_messages - len(out))
            now_ns = time.time_ns()
            for entry, data in taken:
                out.append((entry.channel, self.serializer.loads(data)))
                waits.append(max(0.0, (now_ns - entry.sent_ns) / 1e9))
            if taken and "?" in queue:
                # A single-reader channel is mostly used once: do not leave its directory behind.
                self._queues.remove_if_empty(queue)
                self._bells.forget(queue)
            if len(out) >= max_messages:
                break
        self._local.waits = waits
        return out

    def last_queue_waits(self) -> list[float]:
        """Seconds each message of this thread's last receive waited, from its send (the machine's clock)."""
        return list(getattr(self._local, "waits", []))

    def event_receiver(self, channels: Iterable[str], max_messages: int = 100) -> IPCEventReceiver:
        """A receiver an event loop drives: watch its `fileno()` (a FIFO senders write to), call `read()`."""
        queues = list(dict.fromkeys(names.validate_receive_channels(channels)))
        return IPCEventReceiver(self, queues, max_messages)

    # -- groups --------------------------------------------------------------------

    def group_add(self, group: str, channel: str) -> None:
        """Add `channel` to `group` for `group_expiry` seconds (again: from now)."""
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        self._groups.change(group, add=[channel])

    def group_discard(self, group: str, channel: str) -> None:
        """Remove `channel` from `group`; a no-op if it is not a member."""
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        self._groups.change(group, discard=[channel])

    def group_channels(self, group: str) -> list[str]:
        """The live members of `group`."""
        names.validate_group_name(group)
        return list(self._groups.read(group))

    def send_group(self, group: str, message: dict) -> None:
        """Send to every live member; full members are skipped, never raised.

        A member whose queue holds a message of its own that expired unread is
        evicted first (nobody reads it) and not sent to.
        """
        names.validate_group_name(group)
        payload = self.serializer.dumps(message)
        members = self._groups.read(group)
        if not members:
            return
        expired: set[str] = set()
        for queue in {names.list_name(channel) for channel in members}:
            if self._queues.length(queue) > 0:
                self._queues.expire(queue, expired)
        evicted = expired & members.keys()
        if evicted:
            self._groups.change(group, discard=evicted)
        for channel in members:
            if channel not in evicted:
                self._put(channel, [payload])

    # -- statistics ------------------------------------------------------------------

    def global_statistics(self) -> dict[str, int]:
        """`messages_count` and `channel_full_count` over every process (others' up to 1 s late)."""
        messages, full = self._stats.totals(GLOBAL)
        return {"messages_count": messages, "channel_full_count": full}

    def channel_statistics(self, channel: str) -> dict[str, float]:
        """The counters of `channel`'s queue plus `messages_pending` and `messages_max_age` (seconds)."""
        names.validate_channel_name(channel)
        queue = names.list_name(channel)
        messages, full = self._stats.totals(queue)
        now_ns = time.time_ns()
        live = [e for e in self._queues.entries(queue) if e.deadline_ms > now_ns // 1_000_000]
        return {
            "messages_count": messages,
            "channel_full_count": full,
            "messages_pending": len(live),
            "messages_max_age": max(0.0, (now_ns - live[0].sent_ns) / 1e9) if live else 0,
        }

    # -- per-connection ordering (the `ordering` extension, see .order_book and .ordering) --

    def order_claim(
        self, reply_channel: str, order: int, channel: str, message: dict, timeout: float, max_parked: int
    ) -> str:
        """`run`, `parked` (stored in the layer), `stale`, `stuck` or `dead`."""
        names.validate_channel_name(reply_channel)
        payload = self._park(channel, message)
        return self._orders.claim(reply_channel, int(order), payload, timeout, max_parked)

    def order_advance(self, reply_channel: str, order: int) -> tuple[str, dict] | None:
        """Mark `order` done; the parked `(channel, message)` that is now next, taken out, or None."""
        names.validate_channel_name(reply_channel)
        return self._unpark(self._orders.advance(reply_channel, int(order)))

    def order_forget(self, reply_channel: str) -> None:
        """Drop the connection's ordering state."""
        names.validate_channel_name(reply_channel)
        self._orders.forget(reply_channel)

    # -- process liveness (the `leases` extension, see .leases) -------------------------

    def lease_renew(self, holder: str, ttl: float, info: dict | None = None) -> str:
        """Create or extend `holder`'s lease: `"held"`, `"swept"` or `"lost"` (see the contract)."""
        names.validate_channel_name(holder)
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, not {ttl!r}")
        info = self.serializer.loads(self.serializer.dumps(info or {}))
        return self._leases.renew(holder, ttl, info)

    def lease_track(self, holder: str, reply_channel: str, channel: str, message: dict) -> None:
        """Record that `holder` serves `reply_channel`, and that it ends with `message` on `channel`."""
        for name in (holder, reply_channel, channel):
            names.validate_channel_name(name)
        self._leases.track(holder, reply_channel, (channel, self.serializer.dumps(message)))

    def lease_release(self, holder: str, reply_channel: str, channel: str, message: dict) -> bool:
        """Forget `reply_channel` and send `message` on `channel` if it was still tracked; True if sent."""
        for name in (holder, reply_channel, channel):
            names.validate_channel_name(name)
        payload = self.serializer.dumps(message)
        if not self._leases.release(holder, reply_channel):
            return False
        self._put_uncapped(channel, payload)
        return True

    def lease_end(self, holder: str) -> None:
        """A clean exit: drop `holder`'s lease and whatever it still tracks, sending nothing."""
        names.validate_channel_name(holder)
        self._leases.end(holder)

    def lease_connections(self, holder: str) -> list[str]:
        """The reply channels `holder` tracks now."""
        names.validate_channel_name(holder)
        return self._leases.connections(holder)

    def lease_holders(self) -> dict[str, dict]:
        """The live holders and their `info`."""
        return self._leases.holders()

    def lease_sweep(self, sweeper: str, ttl: float) -> list[str]:
        """Send the disconnects of every expired lease if `sweeper` holds the election (see the contract)."""
        if not isinstance(sweeper, str) or not sweeper:
            raise TypeError(f"sweeper must be a non-empty str, not {sweeper!r}")

        def send(reply_channel: str, channel: str, payload: bytes) -> None:
            message = self.serializer.loads(payload)
            if "order" in message:
                message["order"] = self._orders.next_order(reply_channel)
            self._put_uncapped(channel, self.serializer.dumps(message))

        self.last_sweep = self._leases.sweep(sweeper, ttl, send)
        self._presence_sweep()  # swept holders' presence records and memberships (see .presence)
        return sorted(self.last_sweep)

    def _put_uncapped(self, channel: str, payload: bytes) -> None:
        # Disconnects are bounded by the connections, and one dropped leaves a ghost: capacity does not apply.
        queue = names.list_name(channel)
        items = [(channel, self._queues.write_tmp(payload), len(payload))]
        self._queues.put(queue, items, self.expiry, 1 << 40, 1 << 60)
        self._stats.count(queue, messages=1)
        self._bells.ring(queue)

    # -- inspection (read-only) -------------------------------------------------------

    def inspect_queues(self, limit: int = 1000) -> list[dict]:
        """The non-empty queues, fullest first, at most `limit` (expired messages do not count).

        Lists every queue directory: costs in proportion to the queues and their messages.
        """
        now_ns = time.time_ns()
        out = []
        for queue in self._queues.names():
            if self._queues.length(queue) <= 0:
                continue
            live = [e for e in self._queues.entries(queue) if e.deadline_ms > now_ns // 1_000_000]
            if live:
                out.append(
                    {
                        "channel": queue,
                        "pending": len(live),
                        "oldest_age": max(0.0, (now_ns - live[0].sent_ns) / 1e9),
                        "capacity": self.get_capacity(queue),
                    }
                )
        out.sort(key=lambda row: (-row["pending"], row["channel"]))
        return out[:limit]

    def inspect_groups(self, limit: int = 1000) -> list[dict]:
        """The groups with live members, largest first, at most `limit`."""
        out = []
        for group in self._groups.names():
            members = len(self._groups.read(group))
            if members:
                out.append({"group": group, "members": members})
        out.sort(key=lambda row: (-row["members"], row["group"]))
        return out[:limit]

    # -- housekeeping --------------------------------------------------------------

    def sweep(self) -> None:
        """Remove expired messages nobody will read, if no other process did so in the last interval.

        Runs from `send` every `SWEEP_INTERVAL` seconds (or `expiry`, if
        shorter) per process; one process at a time sweeps (an `flock`
        taken without waiting), and a sweep newer than the interval, by any
        process, stands (the lock file's mtime says when).
        """
        interval = min(SWEEP_INTERVAL, self.expiry)
        self._next_sweep = time.monotonic() + interval
        path = os.path.join(self.root, "sweep")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            return  # flushed: nothing to sweep
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return  # another process is sweeping
        try:
            stat = os.fstat(fd)
            if stat.st_size and time.time() - stat.st_mtime < interval * 0.9:
                return  # swept recently (an empty file was just created: never swept)
            os.pwrite(fd, b"1", 0)  # sets the mtime
            self._orders.sweep()
            expired = self._queues.sweep()
            if expired:
                # Their messages are gone now, so send_group can no longer see them expire: evict here.
                for group in self._groups.names():
                    stale = expired & self._groups.read(group).keys()
                    if stale:
                        self._groups.change(group, discard=stale)
        finally:
            os.close(fd)

    # -- flush and close -----------------------------------------------------------

    def flush(self) -> None:
        """Remove every queue, group, registration and bell of this prefix from /dev/shm."""
        flush_prefix(self.prefix)
        self._stats.forget()

    def close(self) -> None:
        """Remove this process's bells (waking its blocked receives); the layer is unusable after."""
        self._closed = True
        self._stats.publish()
        self._bells.close()

    def __repr__(self) -> str:
        return f"<IPCChannelLayer prefix={self.prefix!r} expiry={self.expiry} capacity={self.capacity}>"


__all__ = ["IPCChannelLayer", "flush_prefix", "shared_objects", "sweep_dead"]
