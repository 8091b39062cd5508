"""Removing what dead processes left behind, and everything of a prefix (`flush`, `manage.py ipc_cleanup`).

A process killed mid-send leaves a file in `t/`; a process that never called
`close()` leaves its bells (`sem.<prefix>.bell.<pid>.<tid>` or `.<pid>.s<n>`) and their
registrations in `w/`. None of them blocks anyone; they only take room, and
every one of them carries its pid in its name, so `sweep_dead` can remove
those of pids that no longer exist. A layer sweeps once when it starts.
"""

from __future__ import annotations

import os
import re
import shutil
import time

try:
    import posix_ipc
except ImportError:  # IPCChannelLayer says what to install; importing the package must not fail
    posix_ipc = None

SHM_DIR = "/dev/shm"
PREFIX_RE = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def root_of(prefix: str) -> str:
    return os.path.join(SHM_DIR, f"{prefix}.ipc")


def shared_objects(prefix: str) -> list[str]:
    """The paths under /dev/shm that belong to the layer of `prefix` (its directory and semaphores)."""
    try:
        listing = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    mine = (f"{prefix}.ipc.flushing.", f"sem.{prefix}.bell.")
    return sorted(os.path.join(SHM_DIR, n) for n in listing if n == f"{prefix}.ipc" or n.startswith(mine))


def flush_prefix(prefix: str) -> list[str]:
    """Remove every shared object of `prefix` from /dev/shm; returns what was there.

    Safe while processes use the layer: they lose what was queued, and
    recreate their directories and bells at their next call.
    """
    _check(prefix)
    found = shared_objects(prefix)
    root = root_of(prefix)
    # Rename first, then delete: others never see a half-deleted tree under the live name.
    doomed = f"{root}.flushing.{os.getpid()}.{time.monotonic_ns()}"
    try:
        os.rename(root, doomed)
    except FileNotFoundError:
        pass
    else:
        _ring_fifos(os.path.join(doomed, "w"), prefix)
        shutil.rmtree(doomed, ignore_errors=True)
    for path in found:
        name = os.path.basename(path)
        if name.startswith("sem."):
            _unlink_semaphore("/" + name[len("sem.") :])
        elif ".flushing." in name:
            shutil.rmtree(path, ignore_errors=True)
    return found


def _ring_fifos(wdir: str, prefix: str) -> None:
    """Write a byte into every event receiver's FIFO under `wdir` (a flushed tree, renamed away).

    An event loop sleeps on its FIFO until a byte arrives; a flush that only unlinked it would leave
    that loop asleep for good, since no sender can find the FIFO any more. Woken, the receiver sees
    its registration gone and raises `LayerConnectionError`, and its owner registers anew.
    """
    for queue in _listdir(wdir):
        for name in _listdir(os.path.join(wdir, queue)):
            if not name.startswith(f"{prefix}.fifo."):
                continue
            try:
                fd = os.open(os.path.join(wdir, queue, name), os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader left (ENXIO), or gone meanwhile
                continue
            try:
                os.write(fd, b"\0")
            except OSError:  # full: it has been rung already
                pass
            finally:
                os.close(fd)


def sweep_dead(prefix: str) -> list[str]:
    """Remove the tmp files, bells and bell registrations of dead processes of `prefix`; returns them."""
    _check(prefix)
    root = root_of(prefix)
    removed: list[str] = []
    tmp = os.path.join(root, "t")
    for name in _listdir(tmp):
        if _pid_dead(name.split(".", 1)[0]):
            removed += _unlink(os.path.join(tmp, name))
    bell_prefix = f"sem.{prefix}.bell."
    dead_bells = {
        name[len("sem.") :]
        for name in _listdir(SHM_DIR)
        if name.startswith(bell_prefix) and _pid_dead(name[len(bell_prefix) :].split(".", 1)[0])
    }
    wdir = os.path.join(root, "w")
    for queue in _listdir(wdir):
        for name in _listdir(os.path.join(wdir, queue)):
            kind = next((k for k in (f"{prefix}.bell.", f"{prefix}.fifo.") if name.startswith(k)), None)
            if kind and _pid_dead(name[len(kind) :].split(".", 1)[0]):
                removed += _unlink(os.path.join(wdir, queue, name))
        try:
            os.rmdir(os.path.join(wdir, queue))
        except OSError:
            pass
    for name in sorted(dead_bells):
        if _unlink_semaphore("/" + name):
            removed.append(os.path.join(SHM_DIR, "sem." + name))
    return removed


def _check(prefix: str) -> None:
    if not isinstance(prefix, str) or not PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"prefix must be 1 to 64 of A-Z a-z 0-9 _ -, not {prefix!r}")


def _pid_dead(text: str) -> bool:
    try:
        pid = int(text)
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _unlink(path: str) -> list[str]:
    try:
        os.unlink(path)
        return [path]
    except FileNotFoundError:
        return []


def _unlink_semaphore(name: str) -> bool:
    try:
        posix_ipc.unlink_semaphore(name)
        return True
    except posix_ipc.ExistentialError:
        return False
