"""`event_receiver` for the IPC layer: a FIFO an event loop can watch, rung by senders like a bell.

`start()` makes a FIFO `w/<queue>/<prefix>.fifo.<pid>.<n>` in the waiters
directory of each queue read (there it is a registration like a bell's) and
opens both ends: the loop watches the read end; the receiver's own write end
keeps the FIFO from reporting end-of-file (which would make it readable for
ever) when no sender has it open, and lets `read()` ring itself when it left
messages behind. Senders write one byte into it after renaming a message in
(`.doorbell.Bells.ring`); a full FIFO has been rung already. No thread, no
poll: the reactor sleeps in its own select until a byte arrives.

A flush removes the FIFOs: `read()` then raises `LayerConnectionError`,
and the caller starts the receiver again, which registers anew.
"""

from __future__ import annotations

import itertools
import os
import time

from ..errors import LayerConnectionError

_counter = itertools.count()
NO_DEADLINE = 10 * 365 * 86400.0  # nothing is awaited from a peer: a FIFO has no answer that can be late


class IPCEventReceiver:
    """Reads `queues` of an IPC layer from an event loop (see the module docstring)."""

    def __init__(self, layer, queues: list[str], max_messages: int) -> None:
        self.layer = layer
        self.queues = queues
        self.max_messages = max_messages
        self.deadline = time.monotonic() + NO_DEADLINE
        self._read_fd = -1
        self._write_fd = -1
        self._paths: list[str] = []
        self._inode: int | None = None

    def start(self) -> None:
        """Register a FIFO on every queue and ring it once, so waiting messages are read at once."""
        self.close()
        wdir = self.layer._bells.wdir
        name = f"{self.layer.prefix}.fifo.{os.getpid()}.{next(_counter)}"
        first = None
        for queue in self.queues:
            directory = os.path.join(wdir, queue)
            os.makedirs(directory, exist_ok=True)
            path = os.path.join(directory, name)
            if first is None:
                os.mkfifo(path, 0o600)
                first = path
            else:
                os.link(first, path)  # one FIFO, registered under every queue
            self._paths.append(path)
        self._read_fd = os.open(first, os.O_RDONLY | os.O_NONBLOCK)
        self._write_fd = os.open(first, os.O_WRONLY | os.O_NONBLOCK)
        self._inode = os.fstat(self._read_fd).st_ino
        self.deadline = time.monotonic() + NO_DEADLINE
        os.write(self._write_fd, b"\0")

    def fileno(self) -> int:
        return self._read_fd

    def read(self) -> list[tuple[str, dict]]:
        """The messages waiting now (maybe none); rings itself again if it left some behind."""
        if self._read_fd < 0:
            raise LayerConnectionError("the IPC event receiver is not started")
        try:
            while os.read(self._read_fd, 4096):
                pass
        except BlockingIOError:
            pass
        try:
            registered = os.stat(self._paths[0]).st_ino == self._inode
        except FileNotFoundError:
            registered = False
        if not registered:
            raise LayerConnectionError("the IPC layer was flushed: its registrations are gone")
        self.deadline = time.monotonic() + NO_DEADLINE
        batch = self.layer._take(self.queues, self.max_messages)
        if len(batch) >= self.max_messages:
            try:
                os.write(self._write_fd, b"\0")  # more may wait: come back at once
            except BlockingIOError:
                pass
        return batch

    def close(self) -> None:
        for path in self._paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self._paths = []
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                os.close(fd)
        self._read_fd = self._write_fd = -1
