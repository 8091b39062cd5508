"""channels_core.test.processes: the child process harness the live server, the tests and the benchmarks share."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

import pytest

from channels_core.test.processes import ChildProcess, ProcessError, alive, child_pids, cpu_seconds, free_port


def python(code: str, **kwargs) -> ChildProcess:
    return ChildProcess([sys.executable, "-u", "-c", code], label="child", **kwargs)


def test_free_port_can_be_bound():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_for_sees_output_and_stop_terminates():
    with python("import sys, time; print('ready'); sys.stderr.write('to stderr\\n'); time.sleep(60)") as child:
        child.wait_for("ready", timeout=10)
        child.wait_for("to stderr", timeout=10)  # stdout and stderr both land in the log
        assert child.alive()
        assert child.stop(timeout=10) == -signal.SIGTERM
        assert not child.killed
    assert not child.log.exists()  # a temporary log is removed on close


def test_wait_for_fails_with_the_output_when_the_child_exits_first():
    with python("print('something else'); raise SystemExit(3)") as child:
        with pytest.raises(ProcessError, match=r"(?s)child exited with 3:.*something else"):
            child.wait_for("never printed", timeout=10)


def test_wait_for_counts_and_times_out():
    with python("import time; print('tick'); print('tick'); time.sleep(60)") as child:
        child.wait_for("tick", timeout=10, count=2)
        with pytest.raises(ProcessError, match="did not print 'tick' 3 times within 0.3s"):
            child.wait_for("tick", timeout=0.3, count=3)


def test_wait_for_port():
    port = free_port()
    code = f"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)"
    with python(code) as child:
        child.wait_for_port(port, timeout=10)


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout():
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready'); time.sleep(60)"
    with python(code) as child:
        child.wait_for("ready", timeout=10)
        assert child.stop(timeout=0.5) == -signal.SIGKILL
        assert child.killed


def test_own_group_stops_what_the_child_started(tmp_path):
    log = tmp_path / "shell.log"
    with ChildProcess(["bash", "-c", "sleep 60 & echo $!; wait"], label="shell", own_group=True, log=log) as child:
        child.wait_for("\n", timeout=10)
        grandchild = int(child.output().split()[0])
        assert alive(grandchild)
        child.stop(timeout=10)
    # The group's signal reaches the orphaned `sleep` at once, but on a loaded machine it may
    # take a moment to be scheduled and die after its parent has been reaped.
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(grandchild)
    assert log.exists()  # a log the caller named is kept


def test_environment_and_working_directory(tmp_path):
    env = dict(os.environ, HARNESS_TEST="yes")
    with python("import os; print(os.environ['HARNESS_TEST'], os.getcwd())", env=env, cwd=tmp_path) as child:
        child.wait()
        assert child.output().split() == ["yes", str(tmp_path)]


def test_proc_readers():
    with python("import time; print('ready'); time.sleep(60)") as child:
        child.wait_for("ready", timeout=10)
        assert child.pid in child_pids(os.getpid())
        assert alive(child.pid)
        assert cpu_seconds(child.pid) >= 0
        child.stop(timeout=10)
        assert not alive(child.pid)
        assert cpu_seconds(child.pid) is None
