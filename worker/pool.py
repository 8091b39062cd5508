"""`WorkerPool`: N forked worker processes, supervised (`runworker --processes N`).

The parent only supervises: it never touches the channel layer or the
database. Each child builds its own worker with `make_worker()`, sends
`worker_process_ready`, then `ready()` and `run()`. A child that dies
(crash, SIGKILL, OOM killer) is logged and replaced; a slot whose children
keep dying young is restarted with an exponential backoff, so a crash loop
does not spin. SIGTERM/SIGINT on the parent is forwarded (as SIGTERM) to
every child, which handles every message it has taken out of the layer and
exits (an idle child within `worker.WAKE_INTERVAL`; its signal handler never
interrupts a read, see `Worker.sigterm_handler`); the parent waits up to
`shutdown_timeout` seconds, SIGKILLs what is left (a consumer still running
then is cut short), and returns 0. A child gets SIGTERM's default action
until its worker installs its handler, which is before its first read.

Redis connections are never shared across the fork: the Redis layer resets
its connection pools in the child (`os.register_at_fork`), and the parent
closes Django's database connections before forking.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from channels_core.layers.backoff import Backoff

logger = logging.getLogger("worker")

# A child that lived shorter than this died "young": its slot's restart delay doubles.
HEALTHY_AFTER = 10.0
RESTART_DELAY_MIN = 0.5
RESTART_DELAY_MAX = 30.0
SHUTDOWN_TIMEOUT = 30.0

_PR_SET_PDEATHSIG = 1


@dataclass
class _Slot:
    index: int
    pid: int | None = None
    started: float = 0.0
    restart_at: float | None = None  # time.monotonic() of a scheduled restart
    delay: float = 0.0  # the delay used after the last young death
    restarts: Backoff = field(default_factory=lambda: Backoff(RESTART_DELAY_MIN, RESTART_DELAY_MAX))


def describe_status(status: int) -> str:
    """'exit code 3' / 'signal SIGKILL' for a `waitpid` status."""
    if os.WIFSIGNALED(status):
        signo = os.WTERMSIG(status)
        try:
            name = signal.Signals(signo).name
        except ValueError:
            name = str(signo)
        return f"signal {name}"
    if os.WIFEXITED(status):
        return f"exit code {os.WEXITSTATUS(status)}"
    return f"status {status}"


class WorkerPool:
    """Fork `processes` children running `make_worker()`, restart the dead ones, drain on SIGTERM."""

    def __init__(
        self,
        make_worker: Callable[[], Any],
        processes: int,
        shutdown_timeout: float = SHUTDOWN_TIMEOUT,
        before_fork: Callable[[], None] | None = None,
        monitor: Any = None,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes!r}")
        self.make_worker = make_worker
        self.processes = processes
        self.shutdown_timeout = shutdown_timeout
        self.before_fork = before_fork if before_fork is not None else _close_django_connections
        self.slots = [_Slot(i) for i in range(processes)]
        self.monitor = monitor
        """A `worker.metrics_pool.PoolMonitor` (one `/metrics` and `/readyz` for the pool), or None."""
        self.stopping = False
        self.restarts = 0
        self._wakeup_r = -1
        self._wakeup_w = -1
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup_fd = -1

    # -- the parent ------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT; returns the exit code (0)."""
        self._install_signals()
        try:
            if self.monitor is not None:
                self.monitor.pool_started(self)
            logger.info("Worker pool %d starting %d worker processes", os.getpid(), self.processes)
            for slot in self.slots:
                self._spawn(slot)
            while not self.stopping:
                self._wait(self._next_timeout())
                self._reap()
                self._restart_due()
            self._shutdown()
        finally:
            self._restore_signals()
            if self.monitor is not None:
                self.monitor.pool_stopped()
        return 0

    def pids(self) -> list[int]:
        return [slot.pid for slot in self.slots if slot.pid is not None]

    def _install_signals(self) -> None:
        self._wakeup_r, self._wakeup_w = os.pipe()
        os.set_blocking(self._wakeup_r, False)
        os.set_blocking(self._wakeup_w, False)
        # Signals only set flags; the C-level handler writes to the pipe, which wakes select().
        self._old_wakeup_fd = signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)
        for signo, handler in (
            (signal.SIGTERM, self._on_stop),
            (signal.SIGINT, self._on_stop),
            (signal.SIGCHLD, _ignore),
        ):
            self._old_handlers[signo] = signal.signal(signo, handler)

    def _restore_signals(self) -> None:
        for signo, handler in self._old_handlers.items():
            signal.signal(signo, handler)
        self._old_handlers.clear()
        signal.set_wakeup_fd(self._old_wakeup_fd)
        for fd in (self._wakeup_r, self._wakeup_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wakeup_r = self._wakeup_w = -1

    def _on_stop(self, signo: int, frame: Any) -> None:
        if not self.stopping:
            self.stopping = True
            logger.info(
                "Worker pool %d: %s received, stopping its worker processes", os.getpid(), signal.Signals(signo).name
            )

    def _next_timeout(self) -> float | None:
        due = [slot.restart_at for slot in self.slots if slot.pid is None and slot.restart_at is not None]
        if not due:
            return None
        return max(0.0, min(due) - time.monotonic())

    def _wait(self, timeout: float | None) -> None:
        """Sleep until a signal arrives (SIGCHLD, SIGTERM, ...) or `timeout` passes."""
        try:
            readable, _, _ = select.select([self._wakeup_r], [], [], timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries, but be safe
            return
        if readable:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                while os.read(self._wakeup_r, 512):
                    pass

    def _reap(self) -> list[tuple[_Slot, int]]:
        """Collect every child that has ended; schedule replacements unless stopping."""
        ended = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            slot.pid = None
            ended.append((slot, status))
            if self.monitor is not None:
                self.monitor.child_exited(pid, slot.index)
            lived = time.monotonic() - slot.started
            if self.stopping:
                logger.info("Worker process %d ended (%s)", pid, describe_status(status))
                continue
            if lived >= HEALTHY_AFTER:
                slot.restarts.reset()
                slot.delay = 0.0
            else:
                slot.delay = slot.restarts.next_delay()
            slot.restart_at = time.monotonic() + slot.delay
            logger.error(
                "Worker process %d died (%s) after %.1fs; starting a replacement in %.1fs",
                pid,
                describe_status(status),
                lived,
                slot.delay,
            )
        return ended

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if self.stopping:
                return
            if slot.pid is None and slot.restart_at is not None and slot.restart_at <= now:
                self.restarts += 1
                self._spawn(slot)

    def _spawn(self, slot: _Slot) -> None:
        self.before_fork()
        # Flush before forking, or the child would write the parent's buffered output again.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            self._child(parent, slot)  # never returns
        slot.pid = pid
        slot.started = time.monotonic()
        slot.restart_at = None
        logger.info("Worker pool %d started worker process %d (slot %d)", parent, pid, slot.index)

    def _shutdown(self) -> None:
        """Forward SIGTERM, wait for the children to drain, SIGKILL stragglers."""
        for slot in self.slots:
            slot.restart_at = None
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_timeout
        while self.pids():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._reap()
            if self.pids():
                self._wait(min(remaining, 0.5))
        left = self.pids()
        if left:
            logger.warning(
                "Worker processes %s did not finish within %ss: killing them",
                ", ".join(map(str, left)),
                self.shutdown_timeout,
            )
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for slot in self.slots:
                if slot.pid is not None:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(slot.pid, 0)
                    if self.monitor is not None:
                        self.monitor.child_exited(slot.pid, slot.index)
                    slot.pid = None
        logger.info("Worker pool %d stopped", os.getpid())

    # -- the child ---------------------------------------------------------------------------

    def _child(self, parent: int, slot: _Slot) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(signo, signal.SIG_DFL)
            for fd in (self._wakeup_r, self._wakeup_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            _die_with_parent(parent)
            if self.stopping:  # SIGTERM reached us before our own handlers were in place
                raise SystemExit(0)
            worker = self.make_worker()
            if self.monitor is not None:
                self.monitor.in_child(slot.index, worker)
            try:
                from channels_core.signals import worker_process_ready

                worker_process_ready.send(sender=type(worker))
            except ImportError:  # pragma: no cover - used without channels_core
                pass
            worker.ready()
            worker.run()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            logger.critical("Worker process %d failed:\n%s", os.getpid(), traceback.format_exc().rstrip())
            code = 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            # Never return into the parent's code (or its atexit handlers) from a child.
            os._exit(code)


def _ignore(signo: int, frame: Any) -> None:
    """SIGCHLD needs a Python-level handler for the wakeup fd to be written."""


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM this child if the supervisor dies, so no orphan keeps consuming."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except Exception:  # pragma: no cover - best effort
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


def _close_django_connections() -> None:
    """Children must open their own database connections, not share the parent's sockets."""
    if "django.db" not in sys.modules:
        return
    try:
        from django.db import connections

        connections.close_all()
    except Exception:  # pragma: no cover - best effort
        logger.debug("Closing database connections before fork failed", exc_info=True)
