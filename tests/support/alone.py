"""Tests marked `alone` run with no other test running, even on several pytest-xdist workers.

The suite runs on two xdist workers (`python3 -m pytest -n 2 --dist loadgroup`). A few tests
measure the machine (1,000 WebSockets under a rolling redeploy, idle CPU) or stop a shared
service (the RabbitMQ broker restart); sharing the two cores with another test turns their
figures into noise or breaks the other test. Each test holds a readers-writer lock on a file
for the whole of its run (setup and teardown included): every other test holds it shared, an
`alone` test exclusively.

Writers go first: a reader takes the `gate` lock for an instant before its shared lock, and a
writer holds `gate` while it waits, so readers arriving meanwhile queue behind it. Without xdist
there is nothing to share, so nothing is locked.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

MARKER = "alone"


def lock_dir(run_id: str) -> str:
    """The directory holding the two lock files of one test run (`testrunuid` from xdist)."""
    path = os.path.join(tempfile.gettempdir(), f"pytest-alone-{run_id}")
    os.makedirs(path, exist_ok=True)
    return path


@contextmanager
def _flock(path: str, mode: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def held(directory: str, exclusive: bool) -> Iterator[None]:
    """Hold the run's lock: exclusively for an `alone` test, shared for any other."""
    gate = os.path.join(directory, "gate")
    room = os.path.join(directory, "room")
    if exclusive:
        with _flock(gate, fcntl.LOCK_EX), _flock(room, fcntl.LOCK_EX):
            yield
    else:
        with _flock(gate, fcntl.LOCK_EX):
            fd = os.open(room, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            yield
        finally:
            os.close(fd)
