"""Child processes for live tests and benchmarks: a free port, a subprocess whose output is kept, a clean stop.

    server = ChildProcess([sys.executable, "-m", "interface_server", "app:layer", "-p", str(port)], label="server")
    server.wait_for("Listening on")
    ...
    server.stop()  # SIGTERM, then SIGKILL if it outlives the timeout
    server.close()  # and remove its log

`ChannelLiveServerTestCase` starts its interface server and workers with
this; the project's own tests and benchmarks do too. Output (stdout and
stderr together) goes to a file rather than a pipe, so a chatty child never
blocks on a full pipe and the whole log can be read at any time.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self

__all__ = ["ChildProcess", "ProcessError", "alive", "child_pids", "cpu_seconds", "free_port"]

_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
_POLL_INTERVAL = 0.02


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now (another process may still take it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _stat(pid: int) -> list[str]:
    # /proc/PID/stat after the parenthesised command name (which may hold spaces): state, ppid, ...
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """True if process `pid` exists and is not a zombie (Linux: read from /proc)."""
    try:
        return _stat(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def child_pids(pid: int, recursive: bool = False) -> set[int]:
    """The live children of `pid` (with `recursive`, all its descendants), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = _stat(int(entry.name))
            except (OSError, IndexError):
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            if recursive:
                todo.append(child)
    return found


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time process `pid` has used so far, or None once it is gone (from /proc)."""
    try:
        fields = _stat(pid)
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime in clock ticks


class ProcessError(RuntimeError):
    """A child exited, or did not get where it was expected to in time; the message holds its output."""


def _die_with_parent() -> None:
    # Runs in the child before exec: Linux sends it SIGTERM when the parent dies, even by SIGKILL,
    # so an interrupted benchmark leaves no server behind. Elsewhere this is silently a no-op.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildProcess:
    """One subprocess, started at once, with its combined output in a log file.

    `own_group` starts it in a new session (the terminal's Ctrl-C does not reach
    it) and sends every signal to its whole process group, so a shell line and
    whatever it started stop together. `die_with_parent` asks Linux to
    SIGTERM it if this process dies. Without `log`, the output goes to a
    temporary file that `close()` removes.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        label: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        log: str | os.PathLike[str] | None = None,
        own_group: bool = False,
        die_with_parent: bool = False,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.label = label or Path(argv[0]).name
        self.own_group = own_group
        self.killed = False  # True once stop() had to fall back to SIGKILL
        self._owns_log = log is None
        if log is None:
            handle = tempfile.NamedTemporaryFile(prefix=f"{self.label}-", suffix=".log", delete=False)  # noqa: SIM115
        else:
            handle = open(log, "wb")  # noqa: SIM115
        self.log = Path(handle.name)
        with handle:
            self.process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=own_group,
                preexec_fn=_die_with_parent if die_with_parent else None,
                pass_fds=tuple(pass_fds),
            )

    # -- the Popen surface tests use ---------------------------------------------------

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def poll(self) -> int | None:
        return self.process.poll()

    def alive(self) -> bool:
        """True until the process has exited."""
        return self.process.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """The exit code; raises `subprocess.TimeoutExpired` if it is still running after `timeout`."""
        return self.process.wait(timeout)

    def send_signal(self, signo: int) -> None:
        """Signal the process (its whole group with `own_group`); nothing if it has already been reaped."""
        if self.process.poll() is not None:
            return
        # The group id is the leader's pid, still ours while the leader is unreaped: never a stranger's group.
        with contextlib.suppress(ProcessLookupError):
            if self.own_group:
                os.killpg(self.process.pid, signo)
            else:
                self.process.send_signal(signo)

    # -- output and readiness ------------------------------------------------------------

    def output(self) -> str:
        """Everything the process has written so far (stdout and stderr interleaved)."""
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, text: str, timeout: float = 30.0, count: int = 1) -> None:
        """Return once `text` appears `count` times in the output; `ProcessError` if it exits or times out."""
        what = f"print {text!r}" + (f" {count} times" if count > 1 else "")
        self.wait_until(lambda: self.output().count(text) >= count, what, timeout)

    def wait_for_port(self, port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
        """Return once `host:port` accepts a connection; `ProcessError` if the process exits or times out."""

        def accepts() -> bool:
            with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
                return True
            return False

        self.wait_until(accepts, f"listen on {host}:{port}", timeout)

    def wait_until(self, ready: Callable[[], object], what: str, timeout: float = 30.0) -> None:
        """Return once `ready()` is true; `ProcessError` ("LABEL did not WHAT within ...") if it exits or times out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None:
                # Output written just before the exit still counts.
                if ready():
                    return
                raise ProcessError(f"{self.label} exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise ProcessError(f"{self.label} did not {what} within {timeout:g}s:\n{self.output()}")
            time.sleep(_POLL_INTERVAL)

    # -- stopping ----------------------------------------------------------------------------

    def stop(self, timeout: float = 15.0, signo: int = signal.SIGTERM) -> int:
        """Send `signo`, then `wait_or_kill(timeout)`. Returns the exit code."""
        self.send_signal(signo)
        return self.wait_or_kill(timeout)

    def wait_or_kill(self, timeout: float = 15.0) -> int:
        """Wait for the exit; SIGKILL (setting `killed`) if it still runs after `timeout`. Returns the exit code."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.killed = True
            return self.kill()

    def kill(self) -> int:
        """SIGKILL (the group with `own_group`) and wait: gone at once, like a crash. Returns the exit code."""
        self.send_signal(signal.SIGKILL)
        return self.process.wait()

    def close(self) -> None:
        """Stop the process if it still runs, and remove the log if it is a temporary file."""
        try:
            self.stop()
        finally:
            if self._owns_log:
                self.log.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.process.returncode is None else f"exited {self.process.returncode}"
        return f"<ChildProcess {self.label} pid {self.process.pid} {state}>"
