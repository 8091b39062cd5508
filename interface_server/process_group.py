"""`interface-server --processes N`: one port served by N supervised server processes.

One interface-server process runs one reactor on one core. `ProcessGroup`
lets one command use several: the parent opens the listening sockets
(`listeners.GroupListeners`) before forking, and each child adopts its
own (`reactor.adoptStreamPort`, as `--fd` does): for TCP one `SO_REUSEPORT`
socket per child on the same port, so the kernel spreads connections evenly;
a UNIX socket and `--fd` are shared by all children.

Each child is a whole server of its own: its own reactor, its own reply
channel (`interface.response.X!`), its own lease (when it dies, a worker's
sweeper sends its sockets' disconnects once the lease expires) and, with
`--metrics-port`, its own metrics listener on a private port that the
parent sums (`group_metrics`).

The parent only supervises, like the worker pool (`worker/pool.py`, which
this package may not import): a child that dies is logged and replaced (at
once if it had lived `HEALTHY_AFTER` seconds, else after a backoff from 0.5 s
doubling to 30 s, so a crash loop does not spin); SIGTERM/SIGINT stops
accepting (the parent closes its copies of the sockets) and is forwarded as
SIGTERM to every child, which shuts down gracefully (`Server.graceful_shutdown`);
what is left after the grace period and the disconnect drain is killed.

Children are forked, never exec'd: the parent has imported the layer (so a
bad layer path fails once, with exit code 2) but never Twisted's reactor,
and each child installs its own reactor after the fork.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from channels_core.layers.backoff import Backoff

logger = logging.getLogger("interface_server.group")

HEALTHY_AFTER = 10.0
"""A child that lived shorter than this died "young": its slot's restart delay doubles."""
RESTART_DELAY_MIN = 0.5
RESTART_DELAY_MAX = 30.0
STOP_MARGIN = 15.0
"""Seconds past the children's grace period before the parent SIGKILLs them (covers the disconnect drain)."""

_PR_SET_PDEATHSIG = 1


@dataclass
class Slot:
    """One child's place in the group: `index` stays, `pid` changes with each replacement."""

    index: int
    pid: int | None = None
    started: float = 0.0
    restart_at: float | None = None
    restarts: Backoff = field(default_factory=lambda: Backoff(RESTART_DELAY_MIN, RESTART_DELAY_MAX))


def describe_status(status: int) -> str:
    """'exit code 3' / 'signal SIGKILL' for a `waitpid` status."""
    if os.WIFSIGNALED(status):
        signo = os.WTERMSIG(status)
        try:
            return f"signal {signal.Signals(signo).name}"
        except ValueError:
            return f"signal {signo}"
    if os.WIFEXITED(status):
        return f"exit code {os.WEXITSTATUS(status)}"
    return f"status {status}"


class ProcessGroup:
    """Fork `processes` children running `run_child(slot_index, fds)`; replace the dead; stop them on SIGTERM.

    `listeners` (a `listeners.GroupListeners`) holds the parent's sockets:
    `fds(slot)` before each fork, `keep_only(slot)` in the child,
    `release(slot)` when a child died, `close()` when stopping (so the
    kernel refuses new connections at once rather than queueing them for
    no one). `monitor` (a `group_metrics.GroupMonitor`, or None) hears of
    each start and exit and serves the group's `/metrics`.
    """

    def __init__(
        self,
        run_child: Callable[[int, list[int]], int],
        processes: int,
        listeners: Any,
        stop_timeout: float,
        monitor: Any = None,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes!r}")
        self.run_child = run_child
        self.processes = processes
        self.listeners = listeners
        self.stop_timeout = stop_timeout
        self.monitor = monitor
        self.slots = [Slot(i) for i in range(processes)]
        self.stopping = False
        self.restarts = 0
        self._wakeup_r = self._wakeup_w = -1
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup_fd = -1

    def pids(self) -> list[int]:
        return [slot.pid for slot in self.slots if slot.pid is not None]

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT; returns the exit code (0)."""
        self._install_signals()
        try:
            if self.monitor is not None:
                self.monitor.start(self)
            logger.info("Process group %d starting %d interface-server processes", os.getpid(), self.processes)
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
                self.monitor.stop()
        return 0

    # -- signals -------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        self._wakeup_r, self._wakeup_w = os.pipe()
        os.set_blocking(self._wakeup_r, False)
        os.set_blocking(self._wakeup_w, False)
        # Handlers only set a flag; the C-level handler writes to the pipe, which wakes select().
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
                "Process group %d: %s received, stopping its processes", os.getpid(), signal.Signals(signo).name
            )

    # -- supervising ---------------------------------------------------------------------------

    def _next_timeout(self) -> float | None:
        due = [slot.restart_at for slot in self.slots if slot.pid is None and slot.restart_at is not None]
        return None if not due else max(0.0, min(due) - time.monotonic())

    def _wait(self, timeout: float | None) -> None:
        """Sleep until a signal arrives (SIGCHLD, SIGTERM, ...) or `timeout` passes."""
        try:
            readable, _, _ = select.select([self._wakeup_r], [], [], timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            return
        if readable:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                while os.read(self._wakeup_r, 512):
                    pass

    def _reap(self) -> None:
        """Collect every child that has ended; schedule its replacement unless stopping."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            slot.pid = None
            if self.monitor is not None:
                self.monitor.child_exited(slot.index, pid)
            self.listeners.release(slot.index)
            if self.stopping:
                logger.info("Interface-server process %d ended (%s)", pid, describe_status(status))
                continue
            lived = time.monotonic() - slot.started
            if lived >= HEALTHY_AFTER:
                slot.restarts.reset()
                delay = 0.0
            else:
                delay = slot.restarts.next_delay()
            slot.restart_at = time.monotonic() + delay
            logger.error(
                "Interface-server process %d (slot %d) died (%s) after %.1fs; starting a replacement in %.1fs",
                pid,
                slot.index,
                describe_status(status),
                lived,
                delay,
            )

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if not self.stopping and slot.pid is None and slot.restart_at is not None and slot.restart_at <= now:
                self.restarts += 1
                self._spawn(slot)

    def _spawn(self, slot: Slot) -> None:
        # Flush first, or the child would write the parent's buffered output again.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        parent = os.getpid()
        try:
            fds = self.listeners.fds(slot.index)
        except Exception as exc:  # ListenError: the port was taken meanwhile; try again later
            slot.restart_at = time.monotonic() + slot.restarts.next_delay()
            logger.error("Cannot start interface-server process (slot %d): %s", slot.index, exc)
            return
        pid = os.fork()
        if pid == 0:
            self._child(parent, slot, fds)  # never returns
        slot.pid = pid
        slot.started = time.monotonic()
        slot.restart_at = None
        if self.monitor is not None:
            self.monitor.child_started(slot.index, pid)
        logger.info("Process group %d started interface-server process %d (slot %d)", parent, pid, slot.index)

    def _shutdown(self) -> None:
        """Stop accepting, forward SIGTERM, wait for the children's graceful shutdown, SIGKILL stragglers."""
        self.listeners.close()
        for slot in self.slots:
            slot.restart_at = None
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while self.pids() and time.monotonic() < deadline:
            self._reap()
            if self.pids():
                self._wait(min(max(deadline - time.monotonic(), 0.0), 0.5))
        left = self.pids()
        if left:
            logger.warning(
                "Interface-server processes %s did not stop within %.0fs: killing them",
                ", ".join(map(str, left)),
                self.stop_timeout,
            )
            for slot in self.slots:
                if slot.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(slot.pid, signal.SIGKILL)
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(slot.pid, 0)
                    if self.monitor is not None:
                        self.monitor.child_exited(slot.index, slot.pid)
                    slot.pid = None
        logger.info("Process group %d stopped", os.getpid())

    # -- the child -----------------------------------------------------------------------------

    def _child(self, parent: int, slot: Slot, fds: list[int]) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for signo in (signal.SIGTERM, signal.SIGCHLD):
                signal.signal(signo, signal.SIG_DFL)
            # A terminal's Ctrl-C reaches the whole process group: the parent turns it into one SIGTERM
            # per child. Ignored here, Twisted leaves SIGINT alone (it only replaces Python's default).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            for fd in (self._wakeup_r, self._wakeup_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.listeners.keep_only(slot.index)
            if self.monitor is not None:
                self.monitor.close_in_child()
            _die_with_parent(parent)
            if self.stopping:  # SIGTERM reached the parent before this child's handlers existed
                raise SystemExit(0)
            code = self.run_child(slot.index, fds)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            logger.critical("Interface-server process %d failed:\n%s", os.getpid(), traceback.format_exc().rstrip())
            code = 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)  # never return into the parent's code (or its atexit handlers)


def _ignore(signo: int, frame: Any) -> None:
    """SIGCHLD needs a Python-level handler for the wakeup fd to be written."""


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM (a graceful stop) this child if the supervisor dies, so no orphan keeps the port."""
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


def write_status(directory: Path, slot: int, status: dict) -> None:
    """Write a child's status file atomically (the parent may be reading it)."""
    tmp = directory / f".{slot}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(status))
    os.replace(tmp, directory / f"{slot}.json")


def read_statuses(directory: Path) -> dict[int, dict]:
    """Each slot's last status file, by slot."""
    out = {}
    for path in directory.glob("*.json"):
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out[int(status["slot"])] = status
    return out
