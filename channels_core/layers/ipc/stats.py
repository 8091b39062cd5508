"""The `statistics` counters: each process counts in memory and publishes its counts in a file of its own.

`s/<pid>.<start ns>` holds a msgpack map {queue: [messages, channel full]}
(and `"#global#"`), replaced whole (write aside, `rename()`) at most once a
second from `send`, and at `close()`. A reader adds its own live counts to
every other process's file. Nothing is shared that could be half-written or
locked: the cost is that another process's last second of counts shows up
late, and is lost if that process is killed before it writes them.
Files of dead processes stay (their counts are history) until `flush`.
"""

from __future__ import annotations

import os
import threading
import time

import msgpack

GLOBAL = "#global#"
WRITE_INTERVAL = 1.0


class Stats:
    def __init__(self, root: str, tmp_path) -> None:
        self.sdir = os.path.join(root, "s")
        self._tmp_path = tmp_path
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._name = f"{self._pid}.{time.time_ns()}"
        self._counts: dict[str, list[int]] = {}
        self._dirty = False
        self._next_write = 0.0

    def count(self, queue: str, messages: int = 0, full: int = 0) -> None:
        with self._lock:
            if os.getpid() != self._pid:
                self._reset()  # a forked child counts its own sends, not its parent's again
            for key in (queue, GLOBAL):
                counts = self._counts.setdefault(key, [0, 0])
                counts[0] += messages
                counts[1] += full
            self._dirty = True
            due = time.monotonic() >= self._next_write
        if due:
            self.publish()

    def publish(self) -> None:
        """Write this process's counts to its file (if they changed)."""
        with self._lock:
            if not self._dirty or os.getpid() != self._pid:
                return
            data = msgpack.packb(self._counts)
            self._dirty = False
            self._next_write = time.monotonic() + WRITE_INTERVAL
        os.makedirs(self.sdir, exist_ok=True)
        tmp = self._tmp_path()
        with open(tmp, "wb") as file:
            file.write(data)
        try:
            os.rename(tmp, os.path.join(self.sdir, self._name))
        except FileNotFoundError:
            os.unlink(tmp)

    def totals(self, key: str) -> tuple[int, int]:
        """(messages, channel full) of `key` (a queue, or `GLOBAL`) over every process."""
        with self._lock:
            mine = list(self._counts.get(key, [0, 0])) if os.getpid() == self._pid else [0, 0]
            own = self._name
        try:
            files = [name for name in os.listdir(self.sdir) if name != own]
        except FileNotFoundError:
            files = []
        for name in files:
            try:
                with open(os.path.join(self.sdir, name), "rb") as file:
                    counts = msgpack.unpackb(file.read(), raw=False).get(key)
            except (FileNotFoundError, ValueError):
                continue
            if counts:
                mine[0] += counts[0]
                mine[1] += counts[1]
        return mine[0], mine[1]

    def forget(self) -> None:
        """After a flush: this process starts counting from zero."""
        with self._lock:
            self._reset()
