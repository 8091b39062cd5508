"""Channel queues as directories of message files on tmpfs (`/dev/shm`).

One directory per queue (`prefix!` for process channels), one file per
message. A message file's name carries everything a reader needs before
opening it::

    <sent ns, 20 digits>,<deadline ms>,<size>,<pid>.<n>,<channel>

so names sort in send order (FIFO), expiry and the channel of a `prefix!`
queue are known from a directory listing, and the payload is the whole file.

Crash safety, step by step:

- a sender writes the payload into `tmp/` first, then `rename()`s it into the
  queue: a reader sees a whole message or none; a sender killed before the
  rename leaves only a file in `tmp/` (removed by `flush`, by the cleanup
  command and by the next layer started while its pid is dead);
- capacity is exact because senders hold an `flock` on the queue directory
  while they count and rename; the kernel drops that lock when its holder
  dies, however it dies, so no process can wait on a dead one;
- a reader opens a message file, then unlinks it, and reads it only if its
  unlink succeeded (one unlink of a name succeeds): at most once, and a
  reader killed before its unlink leaves the message to the others.
  Readers take no lock at all.

Counting is O(1): tmpfs grows a directory's `st_size` by 20 bytes per entry
(`BOGO_DIRENT_SIZE` in mm/shmem.c), so a queue's length is a `stat()`; on
a file system where that does not hold the count falls back to listing.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

from ..serialization import MAX_MESSAGE_SIZE

DIRENT_SIZE = 20
SCAN_MAX_AGE = 1.0
"""Seconds a listing's byte count of a long queue stands in for a new one (see `Queues._fits_memory`)."""
EMPTY_DIR_SIZE = 40


@dataclass(frozen=True)
class Entry:
    """What a message file's name says about it."""

    name: str
    sent_ns: int
    deadline_ms: int
    size: int
    channel: str

    @classmethod
    def parse(cls, name: str) -> Entry | None:
        parts = name.split(",", 4)
        if len(parts) != 5:
            return None
        try:
            return cls(name, int(parts[0]), int(parts[1]), int(parts[2]), parts[4])
        except ValueError:
            return None


def tmpfs_counts_entries(directory: str) -> bool:
    """Whether `st_size` of a directory under `directory` counts its entries (true on Linux tmpfs)."""
    probe = os.path.join(directory, f"probe.{os.getpid()}.{threading.get_native_id()}")
    os.makedirs(probe, exist_ok=True)
    try:
        before = os.stat(probe).st_size
        open(os.path.join(probe, "x"), "wb").close()
        return before == EMPTY_DIR_SIZE and os.stat(probe).st_size == EMPTY_DIR_SIZE + DIRENT_SIZE
    finally:
        try:
            os.unlink(os.path.join(probe, "x"))
        finally:
            os.rmdir(probe)


class Queues:
    """The queue directories under one layer root."""

    def __init__(self, root: str, counts_by_size: bool) -> None:
        self.root = root
        self.qdir = os.path.join(root, "q")
        self.tmp = os.path.join(root, "t")
        self._counts_by_size = counts_by_size
        self._seq = 0
        self._last_ns = 0
        self._lock = threading.Lock()
        # Sorted names seen by the last listing of each queue, so draining a long queue lists it once.
        self._pending: dict[str, deque[str]] = {}
        # queue -> (when, live messages, their bytes) of this process's last listing under the queue's lock.
        self._scans: dict[str, tuple[float, int, int]] = {}

    def _unique(self) -> tuple[int, str]:
        with self._lock:
            self._seq += 1
            now = max(time.time_ns(), self._last_ns + 1)
            self._last_ns = now
            return now, f"{os.getpid()}.{threading.get_native_id()}.{self._seq}"

    def ensure(self) -> None:
        for path in (self.qdir, self.tmp):
            os.makedirs(path, exist_ok=True)

    # -- counting --------------------------------------------------------------

    def length(self, queue: str) -> int:
        """Messages in `queue` (expired unread ones included until someone removes them)."""
        path = os.path.join(self.qdir, queue)
        try:
            return self._count(os.stat(path), path)
        except FileNotFoundError:
            return 0

    def names(self) -> list[str]:
        """The queues that have a directory (maybe empty)."""
        try:
            return os.listdir(self.qdir)
        except FileNotFoundError:
            return []

    def entries(self, queue: str) -> list[Entry]:
        try:
            names = os.listdir(os.path.join(self.qdir, queue))
        except FileNotFoundError:
            return []
        return [e for e in map(Entry.parse, sorted(names)) if e is not None]

    # -- sending -----------------------------------------------------------------

    def tmp_path(self) -> str:
        """A fresh path in tmp/ (which exists on return)."""
        _, unique = self._unique()
        if not os.path.isdir(self.tmp):
            self.ensure()
        return os.path.join(self.tmp, unique)

    def write_tmp(self, payload: bytes) -> str:
        """Write `payload` to a fresh file in tmp/; returns its path (renamed into a queue by `put`)."""
        _, unique = self._unique()
        path = os.path.join(self.tmp, unique)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:
            self.ensure()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        return path

    def put(
        self,
        queue: str,
        items: list[tuple[str, str, int]],
        expiry: float,
        capacity: int,
        memory: int,
    ) -> bool:
        """Move the messages `items` (channel, tmp path, size) into `queue`, in order, all or none.

        False (and the tmp files removed) if they do not fit: more than
        `capacity` unexpired messages, or more than `memory` bytes of them.
        """
        path = os.path.join(self.qdir, queue)
        fd, stat = self._lock_queue(path)
        try:
            count = self._count(stat, path)
            size = sum(item[2] for item in items)
            if count + len(items) > capacity or not self._fits_memory(queue, count + len(items) - 1, size, memory):
                live = self.expire(queue)
                used = sum(e.size for e in live)
                self._scans[queue] = (time.monotonic(), len(live), used)
                if len(live) + len(items) > capacity or used + size > memory:
                    for _, tmp_path, _ in items:
                        _unlink(tmp_path)
                    return False
            for channel, tmp_path, size in items:
                sent_ns, unique = self._unique()
                deadline_ms = (sent_ns // 1_000_000) + int(expiry * 1000)
                try:
                    os.rename(tmp_path, os.path.join(path, f"{sent_ns:020d},{deadline_ms},{size},{unique},{channel}"))
                except FileNotFoundError:
                    # flush removed tmp/ between our steps: the message goes with it.
                    _unlink(tmp_path)
            return True
        finally:
            os.close(fd)

    @staticmethod
    def _lock_queue(path: str) -> tuple[int, os.stat_result]:
        """An fd of the queue directory at `path` (created if missing), holding its flock, and its stat."""
        for _ in range(100):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                os.makedirs(path, exist_ok=True)
                continue
            fcntl.flock(fd, fcntl.LOCK_EX)
            stat = os.fstat(fd)
            if stat.st_nlink > 0:
                return fd, stat
            os.close(fd)  # removed (emptied '?' queue, or flush) while we waited for the lock: again
        raise OSError(f"queue directory {path} keeps disappearing")

    def _count(self, st: os.stat_result, path: str) -> int:
        if self._counts_by_size:
            return (st.st_size - EMPTY_DIR_SIZE) // DIRENT_SIZE
        return len(os.listdir(path))

    def remove_if_empty(self, queue: str) -> None:
        """Remove `queue`'s directory if it holds no message (for used-up single-reader channels)."""
        path = os.path.join(self.qdir, queue)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink > 0 and self._count(os.fstat(fd), path) == 0:
                os.rmdir(path)  # senders take this lock before renaming in, so it is still empty
        except (FileNotFoundError, OSError):
            pass
        finally:
            os.close(fd)
        self._pending.pop(queue, None)

    def _fits_memory(self, queue: str, count: int, size: int, memory: int) -> bool:
        """Whether `size` more bytes surely fit, without listing the queue when that can be avoided.

        Any `count` messages fit when `count` maximal ones would. Past that, the
        bytes come from this process's last listing of the queue, if under
        `SCAN_MAX_AGE` old, plus a maximal size for every message counted since.
        """
        if (count + 1) * MAX_MESSAGE_SIZE <= memory:
            return True
        scan = self._scans.get(queue)
        if scan is None or time.monotonic() - scan[0] > SCAN_MAX_AGE:
            return False
        _, scanned_count, scanned_bytes = scan
        return scanned_bytes + max(0, count - scanned_count) * MAX_MESSAGE_SIZE + size <= memory

    def expire(self, queue: str, channels: set[str] | None = None) -> list[Entry]:
        """Remove the expired messages of `queue`; returns the live ones.

        With `channels`, the channels whose messages expired unread are added to it.
        """
        now_ms = time.time_ns() // 1_000_000
        live = []
        base = os.path.join(self.qdir, queue)
        for entry in self.entries(queue):
            if entry.deadline_ms <= now_ms:
                if _unlink(os.path.join(base, entry.name)) and channels is not None:
                    channels.add(entry.channel)
            else:
                live.append(entry)
        return live

    # -- receiving ---------------------------------------------------------------

    def sweep(self) -> set[str]:
        """Remove the expired messages of every queue, and the directories of empty single-reader queues.

        Readers drop an expired message they meet and senders sweep a full
        queue, but a queue nobody reads or sends to again (the reply channel
        of a client that left) would keep its files for ever without this.
        Returns the channels whose messages expired unread (for group eviction).
        """
        expired: set[str] = set()
        try:
            queues = os.listdir(self.qdir)
        except FileNotFoundError:
            return expired
        for queue in queues:
            if self.length(queue) > 0:
                self.expire(queue, expired)
            if "?" in queue and self.length(queue) == 0:
                self.remove_if_empty(queue)
        return expired

    def take(self, queue: str, max_messages: int = 1) -> list[tuple[Entry, bytes]]:
        """Claim and read up to `max_messages` of the oldest unexpired messages of `queue`, oldest first.

        A message is claimed by whoever unlinks it: two readers may open
        the same file, only one unlink succeeds, the other drops its copy.
        """
        got: list[tuple[Entry, bytes]] = []
        # Names still listed from last time are tried without a stat (a stale one fails its open).
        if not self._pending.get(queue) and self.length(queue) <= 0:
            return got
        base = os.path.join(self.qdir, queue)
        for _ in range(2):
            with self._lock:
                pending = self._pending.get(queue)
                if not pending:
                    try:
                        pending = deque(sorted(os.listdir(base)))
                    except FileNotFoundError:
                        return got
                    self._pending[queue] = pending
            now_ms = time.time_ns() // 1_000_000
            while len(got) < max_messages:
                with self._lock:
                    if not pending:
                        break
                    name = pending.popleft()
                entry = Entry.parse(name)
                if entry is None:
                    continue
                source = os.path.join(base, name)
                if entry.deadline_ms <= now_ms:
                    _unlink(source)
                    continue
                try:
                    fd = os.open(source, os.O_RDONLY)
                except FileNotFoundError:
                    continue  # another reader took it, or flush removed it
                try:
                    if not _unlink(source):
                        continue  # another reader unlinked it first: theirs
                    data = _read_all(fd, entry.size)
                finally:
                    os.close(fd)
                got.append((entry, data))
            if len(got) >= max_messages or self.length(queue) <= 0:
                break
        return got


def _read_all(fd: int, size: int) -> bytes:
    data = os.read(fd, size)
    if len(data) == size:
        return data
    parts = [data]
    while True:
        more = os.read(fd, 1 << 20)
        if not more:
            return b"".join(parts)
        parts.append(more)


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
