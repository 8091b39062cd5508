"""WorkerPool supervision, in a subprocess (it forks and owns signals): replace, back off, drain, kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path

import pytest

from channels_core.test.processes import ChildProcess, alive, child_pids
from tests.interface_server.harness import ROOT
from tests.support.waiting import wait_for


class Pool:
    def __init__(self, tmp_path: Path, mode: str, processes: int, shutdown_timeout: float = 30.0) -> None:
        self.events = tmp_path / "events"
        self.events.touch()
        self.process = ChildProcess(
            [sys.executable, "-m", "tests.worker.pool_script", str(self.events), mode, str(processes)]
            + [str(shutdown_timeout)],
            label="pool",
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT), DJANGO_SETTINGS_MODULE="tests.project.settings"),
            log=tmp_path / "pool.log",
        )

    def by_event(self) -> dict[str, list[int]]:
        out = defaultdict(list)
        for line in self.events.read_text().splitlines():
            pid, event = line.split()
            out[event].append(int(pid))
        return out

    def output(self) -> str:
        return self.process.output()

    def cleanup(self) -> None:
        kids = child_pids(self.process.pid)
        self.process.kill()
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def pools(tmp_path):
    started: list[Pool] = []

    def start(mode: str, processes: int, shutdown_timeout: float = 30.0) -> Pool:
        directory = tmp_path / f"pool{len(started)}"
        directory.mkdir()
        pool = Pool(directory, mode, processes, shutdown_timeout)
        started.append(pool)
        return pool

    yield start
    for pool in started:
        pool.cleanup()


def test_dead_child_is_replaced_and_sigterm_drains_every_child(pools):
    pool = pools("drain", 2)
    assert wait_for(lambda: len(pool.by_event()["running"]) == 2, 15), pool.output()
    first = set(pool.by_event()["running"])
    assert child_pids(pool.process.pid) == first
    assert sorted(pool.by_event()["process_ready"]) == sorted(first)  # worker_process_ready in each child

    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: len(pool.by_event()["running"]) == 3, 10), pool.output()
    now = set(pool.by_event()["running"]) - {victim}
    assert len(now) == 2 and child_pids(pool.process.pid) == now
    assert f"Worker process {victim} died (signal SIGKILL)" in pool.output()

    pool.process.send_signal(signal.SIGTERM)
    assert pool.process.wait(10) == 0, pool.output()
    # Each surviving child finished its "message in hand" before exiting.
    assert sorted(pool.by_event()["drained"]) == sorted(now)
    assert not any(alive(pid) for pid in now)
    assert "pool returned 0" in pool.output()


def test_crash_loop_backs_off(pools):
    pool = pools("crash", 1)
    time.sleep(2.5)
    starts = pool.by_event()["ready"]
    # Delays 0.5, 1, 2 s: about 3 starts in 2.5 s, never a spin.
    assert 2 <= len(starts) <= 4, (len(starts), pool.output())
    assert "fake worker crashes at start" in pool.output()
    assert "died (exit code 1)" in pool.output()
    pool.process.send_signal(signal.SIGTERM)
    assert pool.process.wait(5) == 0


def test_child_that_ignores_sigterm_is_killed_after_the_timeout(pools):
    pool = pools("stuck", 2, shutdown_timeout=1.0)
    assert wait_for(lambda: len(pool.by_event()["running"]) == 2, 15), pool.output()
    kids = set(pool.by_event()["running"])
    started = time.monotonic()
    pool.process.send_signal(signal.SIGINT)  # Ctrl-C behaves as SIGTERM
    assert pool.process.wait(10) == 0
    assert 0.9 < time.monotonic() - started < 5
    assert "did not finish within 1.0s: killing them" in pool.output()
    assert not any(alive(pid) for pid in kids)


def test_children_exit_when_the_supervisor_is_killed(pools):
    pool = pools("drain", 2)
    assert wait_for(lambda: len(pool.by_event()["running"]) == 2, 15), pool.output()
    kids = set(pool.by_event()["running"])
    pool.process.kill()
    pool.process.wait()
    assert wait_for(lambda: not any(alive(pid) for pid in kids), 5), "orphaned workers keep running"


def test_redis_connections_are_not_shared_across_fork(redis_url, key_prefix):
    """A layer used in the parent before fork gets fresh connections in the child; both keep working."""
    code = textwrap.dedent(
        f"""
        import gc
        import os
        from channels_core.layers import RedisChannelLayer
        from channels_core.layers.redis.connection import _readable

        layer = RedisChannelLayer(hosts=[{redis_url!r}], prefix={key_prefix!r}, blocking_timeout=1)
        layer.send("fork.test", {{"from": "parent"}})
        shard = layer.shards[0]
        assert shard._idle and shard._created == 1, (shard._idle, shard._created)
        parent_conn = shard._idle[0]
        pid = os.fork()
        if pid == 0:
            ok = not shard._idle and shard._created == 0
            channel, message = layer.receive(["fork.test"], block=True)
            ok = ok and message == {{"from": "parent"}} and parent_conn not in shard._idle
            # Dropping the inherited connection object in the child must not shut the parent's socket.
            del parent_conn
            gc.collect()
            layer.send("fork.back", {{"from": "child"}})
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        # The parent's own connection is intact: the child never wrote to it or shut it down.
        assert shard._idle[0] is parent_conn
        assert parent_conn._sock is not None and not _readable(parent_conn._sock), "socket closed under us"
        assert layer.shards[0].execute("PING") in (b"PONG", True, "PONG")
        channel, message = layer.receive(["fork.back"], block=True)
        assert message == {{"from": "child"}}, message
        layer.flush()
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30, env=dict(os.environ)
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
