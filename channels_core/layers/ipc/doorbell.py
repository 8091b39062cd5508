"""Waking blocked receivers: named POSIX semaphores registered on queues, rung by senders.

A bell is shared by the threads of one process that wait on the same set of
queues and take turns with it (`/<prefix>.bell.<pid>.s<n>`; see
`IPCChannelLayer.receive_batch`), or a thread's own for a set with a
single-reader channel (`/<prefix>.bell.<pid>.<tid>`). A thread that has to
wait for any of several queues registers the bell (file `/dev/shm/sem.<prefix>.bell...`)
in each queue's waiters directory (`w/<queue>/<bell name>`, an empty file),
then waits in `sem_timedwait` on that one semaphore: one wait over every
channel, no polling. A sender, after renaming its message into a queue,
lists that queue's waiters and posts each bell.

No wake-up is lost: the receiver drains its bell, then looks at its queues,
then waits; a message renamed in after the look posts the bell, which stays
posted until the wait. A semaphore used this way is never held, so a process
killed at any instant leaves nothing that others wait on; a dead waiter's
registration only costs senders a post until a sender sees its bell
unanswered (value over `STALE_VALUE`) and its pid gone, and removes it.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

try:
    import posix_ipc
except ImportError:  # IPCChannelLayer says what to install; importing the package must not fail
    posix_ipc = None

STALE_VALUE = 64
_slots = itertools.count()
MTIME_TRUST_NS = 50_000_000  # far above any file system timestamp granularity (tmpfs: a jiffy, 1 to 10 ms)


class Slot:
    """A bell and the queues it is registered on (a thread's own, or one shared by taking turns)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bell: posix_ipc.Semaphore | None = None
        self.pid = os.getpid()
        self.registered: set[str] = set()
        self.winode: int | None = None


class Bells:
    """The bells of one layer: the waiting side (per thread) and the ringing side (per queue)."""

    def __init__(self, root: str, prefix: str) -> None:
        self.wdir = os.path.join(root, "w")
        self.prefix = prefix
        self._local = threading.local()
        self._ringing: dict[tuple[str, int], posix_ipc.Semaphore] = {}
        self._lock = threading.Lock()
        self._mine: set[str] = set()
        self._waiters: dict[str, tuple[int, list[tuple[str, int, str]]]] = {}
        self._fifos: dict[tuple[str, int], int] = {}

    def bell_name(self) -> str:
        return f"/{self.prefix}.bell.{os.getpid()}.{threading.get_native_id()}"

    # -- waiting -----------------------------------------------------------------

    def shared_slot(self) -> Slot:
        """A bell that the threads of this process waiting on one set of queues take turns with.

        Its count then says what arrived since the last thread drained it, whichever thread that was
        (see `IPCChannelLayer.receive_batch`); a thread's own bell counts sends made while it was busy.
        """
        return Slot(f"/{self.prefix}.bell.{os.getpid()}.s{next(_slots)}")

    def _slot(self, slot: Slot | None) -> Slot:
        if slot is not None:
            return slot
        mine = getattr(self._local, "slot", None)
        if mine is None or mine.pid != os.getpid():
            mine = self._local.slot = Slot(self.bell_name())
        return mine

    def _bell(self, slot: Slot) -> posix_ipc.Semaphore:
        if slot.bell is None or slot.pid != os.getpid():
            slot.bell = posix_ipc.Semaphore(slot.name, posix_ipc.O_CREAT, 0o600, 0)
            slot.pid, slot.registered = os.getpid(), set()
            with self._lock:
                self._mine.add(slot.bell.name)
        return slot.bell

    def prepare(self, queues: list[str], slot: Slot | None = None) -> tuple[posix_ipc.Semaphore, int]:
        """Register a bell on `queues` and clear earlier rings; call before looking at them.

        The bell is this thread's, or `slot`'s. Returns it and how many rings were cleared: one per message
        sent to a registered queue since the last clearing, or -1 if registrations were (re)made, as what was
        sent before them rang nothing.
        """
        slot = self._slot(slot)
        bell = self._bell(slot)
        filename = bell.name.lstrip("/")
        registered: set[str] = slot.registered
        rung = 0
        # One stat tells whether a flush replaced the registrations since they were made.
        if _inode(self.wdir) != slot.winode:
            registered.clear()
        missing = [q for q in queues if q not in registered]
        if missing:
            rung = -1  # new registrations: what was sent before them rang nothing, so look
            if not registered and not _bell_exists(bell.name):
                # flush removed every registration and bell: open a fresh bell under the same name.
                bell.close()
                slot.bell = None
                bell = self._bell(slot)
                registered = slot.registered
            for queue in missing:
                path = os.path.join(self.wdir, queue)
                os.makedirs(path, exist_ok=True)
                open(os.path.join(path, filename), "wb").close()
                registered.add(queue)
            slot.winode = _inode(self.wdir)
        while True:
            try:
                bell.acquire(0)
                rung += rung >= 0
            except posix_ipc.BusyError:
                return bell, rung

    def forget(self, queue: str) -> None:
        """Drop this thread's registration on `queue` (a used-up single-reader channel), and its directory."""
        slot = getattr(self._local, "slot", None)
        if slot is None or queue not in slot.registered or slot.bell is None:
            return
        slot.registered.discard(queue)
        path = os.path.join(self.wdir, queue)
        _unlink(os.path.join(path, slot.bell.name.lstrip("/")))
        try:
            os.rmdir(path)
        except OSError:
            pass  # another waiter is registered, or it is gone already

    @staticmethod
    def wait(bell: posix_ipc.Semaphore, timeout: float) -> bool:
        """Wait up to `timeout` seconds for one ring; whether it came."""
        try:
            bell.acquire(max(timeout, 0.0))
            return True
        except posix_ipc.BusyError:
            return False

    # -- ringing -------------------------------------------------------------------

    def ring(self, queue: str, messages: int = 1) -> None:
        """Post every bell registered on `queue` once per message sent (FIFOs get one byte).

        A ring per message lets threads taking turns on a shared bell count what may still wait
        (`IPCChannelLayer.receive_batch`).
        """
        path = os.path.join(self.wdir, queue)
        try:
            mtime = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            return
        # The waiters change rarely: list them again only when the directory changed (one stat, not a listing).
        cached = self._waiters.get(queue)
        if cached is not None and cached[0] == mtime:
            entries = cached[1]
        else:
            try:
                entries = [(e.name, e.inode(), e.path) for e in os.scandir(path)]
            except FileNotFoundError:
                return
            if len(self._waiters) > 10_000:
                self._waiters.clear()
            # Kept only when listed well after the last change: a change within the same clock tick of
            # the file system's timestamps would leave the mtime as it was.
            if time.time_ns() - mtime > MTIME_TRUST_NS:
                self._waiters[queue] = (mtime, entries)
            else:
                self._waiters.pop(queue, None)
        for name, inode, entry_path in entries:
            key = (name, inode)
            if ".fifo." in name:
                self._ring_fifo(queue, key, entry_path)
                continue
            bell = self._ringing.get(key)
            if bell is None:
                try:
                    bell = posix_ipc.Semaphore("/" + name)
                except posix_ipc.ExistentialError:
                    _unlink(entry_path)  # its bell is gone (flushed): so is the waiter
                    self._waiters.pop(queue, None)
                    continue
                with self._lock:
                    if len(self._ringing) > 1000:
                        for old in self._ringing.values():
                            old.close()
                        self._ringing.clear()
                    self._ringing[key] = bell
            if bell.value > STALE_VALUE and _dead(name):
                _unlink(entry_path)
                _unlink_bell("/" + name)
                self._waiters.pop(queue, None)
                continue
            for _ in range(messages):
                bell.release()

    def _ring_fifo(self, queue: str, key: tuple[str, int], path: str) -> None:
        """Write a byte into an event receiver's FIFO (see `.events`); a FIFO nobody reads is removed."""
        with self._lock:
            fd = self._fifos.get(key)
        if fd is None:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except FileNotFoundError:
                return
            except OSError:  # ENXIO: no reader has it open, its process died
                if _dead(key[0]):
                    _unlink(path)
                    self._waiters.pop(queue, None)
                return
            with self._lock:
                if len(self._fifos) > 1000:
                    for old in self._fifos.values():
                        os.close(old)
                    self._fifos.clear()
                self._fifos[key] = fd
        try:
            os.write(fd, b"\0")
        except BlockingIOError:
            pass  # full: rung already, many times
        except OSError:  # EPIPE: its reader closed it
            with self._lock:
                self._fifos.pop(key, None)
            os.close(fd)

    # -- closing -------------------------------------------------------------------

    def close(self) -> None:
        """Remove this process's bells and registrations; wakes any thread still waiting on one."""
        with self._lock:
            mine, self._mine = self._mine, set()
            ringing, self._ringing = self._ringing, {}
        for bell in ringing.values():
            bell.close()
        with self._lock:
            fifos, self._fifos = self._fifos, {}
        for fd in fifos.values():
            os.close(fd)
        for name in mine:
            filename = name.lstrip("/")
            try:
                for queue in os.listdir(self.wdir):
                    _unlink(os.path.join(self.wdir, queue, filename))
            except FileNotFoundError:
                pass
            try:
                bell = posix_ipc.Semaphore(name)
                bell.release()
                bell.close()
            except posix_ipc.ExistentialError:
                pass
            _unlink_bell(name)


def _dead(bell_filename: str) -> bool:
    """Whether the process named in a bell's name (`<prefix>.bell.<pid>.<tid>`) has exited."""
    try:
        pid = int(bell_filename.rsplit(".", 2)[-2])
        os.kill(pid, 0)
    except (ValueError, IndexError):
        return False
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _bell_exists(name: str) -> bool:
    try:
        posix_ipc.Semaphore(name).close()
        return True
    except posix_ipc.ExistentialError:
        return False


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _unlink_bell(name: str) -> None:
    try:
        posix_ipc.unlink_semaphore(name)
    except posix_ipc.ExistentialError:
        pass
