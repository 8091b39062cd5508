"""Metrics and health of a worker pool (`runworker --processes N --metrics-port P`): one endpoint, summed.

The parent (`WorkerPool`) serves `/metrics`, `/healthz` and `/readyz`; the
children serve nothing:

- metrics: `PoolMonitor` creates a private temporary directory and sets
  `PROMETHEUS_MULTIPROC_DIR` to it before the first fork; each child's
  metrics write their values to files there (`worker.metrics`), the parent's
  `/metrics` sums them with prometheus_client's `MultiProcessCollector`, and
  a child's exit is reported with `mark_process_dead` (its gauges leave the
  sums; its counters and histograms stay, so totals never go back). The
  directory is removed when the pool stops.
- readiness: each child writes its own state (`worker.health.worker_problem`)
  with the time into its slot of a small shared memory board every
  `BEAT_INTERVAL`; the parent's `/readyz` is 200 when the layer answers a ping
  and at least one child is alive, recent and without a problem (the pool
  still takes messages), and lists the slots that are not.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import mmap
import os
import shutil
import struct
import tempfile
import threading
import time
from typing import Any

from .health import STALE_AFTER, HealthServer, layer_problem, worker_problem, worker_threads
from .metrics import MULTIPROC_ENV, state_families

logger = logging.getLogger("worker")

BEAT_INTERVAL = 0.5
"""Seconds between two writes of a child's state to the board."""
BEAT_STALE = 5.0
"""A child whose last write is older than this is frozen (or gone)."""

_RECORD = 256
_DB_HEADER = 8  # prometheus_client's value files start with 4 bytes of used length and 4 of padding
_HEADER = struct.Struct("<dII")  # time.time(), threads, threads running a consumer


class HeartbeatBoard:
    """Per-slot `(time.time(), problem, threads, running)` records in anonymous shared memory.

    Made by the parent before forking; each child writes its own slot, the parent reads them all.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._map = mmap.mmap(-1, _RECORD * slots)

    def write(self, slot: int, problem: str | None, threads: int = 0, running: int = 0) -> None:
        text = (problem or "").encode("utf-8", "replace")[: _RECORD - _HEADER.size]
        start = slot * _RECORD
        # The problem first, the time last: a reader seeing the new time sees at worst a mixed text.
        self._map[start + _HEADER.size : start + _RECORD] = text.ljust(_RECORD - _HEADER.size, b"\0")
        self._map[start : start + _HEADER.size] = _HEADER.pack(time.time(), threads, running)

    def read(self, slot: int) -> tuple[float, str]:
        """`(time written, problem or "")` of `slot`; `(0.0, "")` if never written since the last `clear`."""
        when, _, _ = self.read_state(slot)
        start = slot * _RECORD
        text = self._map[start + _HEADER.size : start + _RECORD].rstrip(b"\0").decode("utf-8", "replace")
        return when, text

    def read_state(self, slot: int) -> tuple[float, int, int]:
        """`(time written, threads, threads running a consumer)` of `slot`."""
        start = slot * _RECORD
        return _HEADER.unpack(self._map[start : start + _HEADER.size])

    def clear(self, slot: int) -> None:
        start = slot * _RECORD
        self._map[start : start + _RECORD] = b"\0" * _RECORD

    def close(self) -> None:
        self._map.close()


class PoolMonitor:
    """What `WorkerPool` calls to serve one `/metrics` and `/readyz` for all its processes.

    Made before the pool starts: it binds `host:port` at once (an `OSError`
    if it cannot, with nothing left behind) and sets `PROMETHEUS_MULTIPROC_DIR`
    in this process's environment, which the children inherit; `layer` is
    pinged by `/readyz` (None: not checked).
    """

    def __init__(
        self,
        processes: int,
        host: str = "127.0.0.1",
        port: int = 0,
        layer: Any = None,
        stale_after: float = STALE_AFTER,
    ) -> None:
        self.server: HealthServer | None = HealthServer(host, port, self.metrics, self.ready)
        self.directory = tempfile.mkdtemp(prefix="channels-worker-metrics-")
        self._previous_env = os.environ.get(MULTIPROC_ENV)
        os.environ[MULTIPROC_ENV] = self.directory
        self.board = HeartbeatBoard(processes)
        self.layer = layer
        self.stale_after = stale_after
        self.pool: Any = None
        self._beat_stop = threading.Event()

    # -- the parent ------------------------------------------------------------------------

    def pool_started(self, pool: Any) -> None:
        """Start serving (before the first fork; the children close their copy of the socket)."""
        self.pool = pool
        if self.server is not None:
            self.server.start()
        logger.info("Worker pool %d sums its processes' metrics from %s", os.getpid(), self.directory)

    def child_exited(self, pid: int, slot: int) -> None:
        """A child ended: its live gauges leave the sums, its slot is empty until the next child writes."""
        from prometheus_client import multiprocess

        try:
            multiprocess.mark_process_dead(pid, self.directory)
        except OSError:  # pragma: no cover - best effort
            logger.debug("mark_process_dead(%d) failed", pid, exc_info=True)
        self.board.clear(slot)

    def pool_stopped(self) -> None:
        """Stop serving, remove the directory, restore the environment."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        shutil.rmtree(self.directory, ignore_errors=True)
        if self._previous_env is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = self._previous_env

    def metrics(self) -> tuple[str, bytes]:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        from .metrics import exposition

        registry = CollectorRegistry()
        registry.register(_WrittenFilesCollector(self.directory, MultiProcessCollector.merge))
        registry.register(_PoolStateCollector(self))
        return exposition(registry)

    def live_slots(self) -> list[int]:
        """The slots whose child is alive and wrote its state within `BEAT_STALE` seconds."""
        now = time.time()
        slots = []
        for slot in range(self.board.slots):
            pid = self.pool.slots[slot].pid if self.pool is not None else None
            when, _, _ = self.board.read_state(slot)
            if pid is not None and when and now - when <= BEAT_STALE:
                slots.append(slot)
        return slots

    def ready(self) -> str | None:
        """None when the layer answers and at least one child takes messages; else why not."""
        if self.pool is not None and self.pool.stopping:
            return "shutting down"
        problem = layer_problem(self.layer) if self.layer is not None else None
        if problem is not None:
            return problem
        now = time.time()
        problems = []
        for slot in range(self.board.slots):
            pid = self.pool.slots[slot].pid if self.pool is not None else None
            when, text = self.board.read(slot)
            if pid is None:
                problems.append(f"process {slot}: restarting")
            elif when == 0:
                problems.append(f"process {slot} (pid {pid}): starting")
            elif now - when > BEAT_STALE:
                problems.append(f"process {slot} (pid {pid}): no heartbeat for {now - when:.1f}s")
            elif text:
                problems.append(f"process {slot} (pid {pid}): {text}")
        if len(problems) < self.board.slots:
            return None
        return "no worker process takes messages: " + "; ".join(problems)

    # -- a child ---------------------------------------------------------------------------

    def in_child(self, slot: int, worker: Any) -> None:
        """In a new child, once its worker exists: drop the parent's socket, start writing the slot."""
        if self.server is not None:
            with contextlib.suppress(OSError):
                self.server.close_in_child()
            self.server = None
        self._beat_stop = threading.Event()
        thread = threading.Thread(target=self._beat, args=(slot, worker), name="pool-heartbeat", daemon=True)
        thread.start()

    def _beat(self, slot: int, worker: Any) -> None:
        metrics = getattr(worker, "metrics", None)
        while not self._beat_stop.is_set():
            try:
                if metrics is not None:
                    metrics.flush()  # the parent reads the files: what the threads counted goes there
                problem = worker_problem(worker, self.stale_after)
                threads = worker_threads(worker)
                running = sum(1 for t in threads if t.in_job)
            except Exception as exc:  # never let the heartbeat die silently: report the bug as the state
                problem, threads, running = f"health check failed: {type(exc).__name__}: {exc}", [], 0
            self.board.write(slot, problem, 0 if getattr(worker, "termed", False) else len(threads), running)
            self._beat_stop.wait(BEAT_INTERVAL)


class _WrittenFilesCollector:
    """prometheus_client's multiprocess merge over the children's files, minus the ones still empty.

    A child creates its file before it sizes it, so a scrape at that instant finds 0 bytes, and
    `MultiProcessCollector` fails the whole scrape on it ("unpack_from requires a buffer of at least
    4 bytes"). A file that has no header yet holds no sample: leaving it out loses nothing.
    """

    def __init__(self, directory: str, merge: Any) -> None:
        self.directory = directory
        self.merge = merge

    def collect(self) -> list[Any]:
        files = []
        for path in glob.glob(os.path.join(self.directory, "*.db")):
            try:
                if os.path.getsize(path) >= _DB_HEADER:
                    files.append(path)
            except OSError:  # the child's file was removed as it exited
                continue
        return self.merge(files, accumulate=True)


class _PoolStateCollector:
    """`channels_worker_threads` and `_consumers_running` summed over the live children's board records."""

    def __init__(self, monitor: PoolMonitor) -> None:
        self.monitor = monitor

    def collect(self) -> list[Any]:
        threads = running = 0
        for slot in self.monitor.live_slots():
            _, slot_threads, slot_running = self.monitor.board.read_state(slot)
            threads += slot_threads
            running += slot_running
        return state_families(threads, running)
