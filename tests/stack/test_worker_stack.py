"""runworker through the whole stack: real interface-server, real `manage.py runworker` processes,
real WebSocket clients, Redis.

Consumers live in tests/project/app/consumers.py (/ws/, /notes/, /special/...)
and tests/project/app/worker_consumers.py (/worker/slow/, /worker/crash/, /worker/pid/).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.exceptions import InvalidStatus

from channels_core.layers import RedisChannelLayer
from channels_core.test.processes import alive, child_pids
from tests.interface_server.harness import ROOT, receive
from tests.interface_server.ws_support import close_code, wait_closed, ws_connect
from tests.support.waiting import wait_for

from .harness import Stack


def echo(stack, texts: list[str], path: str = "/ws/echo/") -> list[str]:
    with ws_connect(stack.ws_url + path) as ws:
        out = []
        for text in texts:
            ws.send(text)
            out.append(ws.recv(timeout=10))
        return out


def manage_env(stack, **extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), **stack.env, **extra)


def listening_pids(output: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"Listening on channels .*\(pid (\d+),", output)]


# -- consumer failures ------------------------------------------------------------------------


def test_crashing_consumers_are_answered_and_the_worker_serves_on(stack):
    stack.start_server()
    worker = stack.start_worker()

    # A connect consumer that raises: the worker sends close 1011 on a pending connect -> rejected.
    with pytest.raises(InvalidStatus) as info:
        ws_connect(stack.ws_url + "/special/crash/")
    assert info.value.response.status_code == 403

    # A receive consumer that raises: the socket is closed with 1011 (internal error).
    with ws_connect(stack.ws_url + "/worker/crash/") as ws:
        ws.send("boom")
        _, closed = wait_closed(ws, timeout=10)
        assert close_code(closed) == 1011

    # The same worker process serves the next connection.
    assert echo(stack, ["still", "here"]) == ["still", "here"]
    assert worker.poll() is None
    output = stack.worker_output()
    assert re.search(
        r"Consumer \S+\.crash failed on websocket\.connect from 127\.0\.0\.1:\d+ "
        r"\(/special/crash/\)",
        output,
    )
    # websocket.receive has no client key: the reply channel identifies the connection.
    assert re.search(
        r"Consumer \S+\.crash_on_receive failed on websocket\.receive from \S+!\S+ "
        r"\(/worker/crash/\)",
        output,
    )
    assert "RuntimeError: this consumer always fails" in output  # the traceback is logged


def test_consume_later_on_connect_accepts_after_two_retries(stack):
    stack.start_server()
    stack.start_worker()
    with ws_connect(stack.ws_url + "/special/later/") as ws:
        assert ws.recv(timeout=10) == "after 2 retries"


def test_named_group_becomes_a_consumer_kwarg(stack):
    stack.start_server()
    stack.start_worker()
    with ws_connect(stack.ws_url + "/special/room/abc/") as ws:
        assert ws.recv(timeout=10) == "room abc"


def test_group_broadcast_from_a_model_save_in_another_process(stack):
    stack.start_server()
    stack.start_worker()
    first = ws_connect(stack.ws_url + "/notes/")
    second = ws_connect(stack.ws_url + "/notes/")
    with first, second:
        result = stack.manage(
            "shell", "-c", "from tests.project.app.models import Note; Note.objects.create(text='hi')"
        )
        assert result.returncode == 0, result.stderr
        assert first.recv(timeout=10) == "note:hi"
        assert second.recv(timeout=10) == "note:hi"


# -- process failures and pools ------------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_worker_does_not_stop_the_others(stack):
    stack.start_server()
    victim = stack.start_worker()
    survivor = stack.start_worker()
    victim.send_signal(signal.SIGKILL)
    victim.wait(5)
    with ThreadPoolExecutor(4) as pool:
        batches = [[f"m{b}-{i}" for i in range(5)] for b in range(4)]
        results = list(pool.map(lambda texts: echo(stack, texts), batches))
    assert results == batches  # all 20 answered
    assert survivor.poll() is None


@pytest.mark.slow
def test_processes_pool_replaces_a_killed_child(stack):
    stack.start_server()
    parent = stack.start_worker("--processes", "2")
    assert wait_for(lambda: len(child_pids(parent.pid)) == 2, 15), stack.worker_output()
    assert wait_for(lambda: len(listening_pids(stack.worker_output())) == 2, 15), stack.worker_output()
    before = child_pids(parent.pid)
    assert set(listening_pids(stack.worker_output())) == before

    victim = min(before)
    os.kill(victim, signal.SIGKILL)

    snapshot: dict[str, set[int]] = {}

    def replaced() -> bool:
        now = child_pids(parent.pid)  # one snapshot: the victim may turn zombie between two reads
        if len(now) == 2 and victim not in now:
            snapshot["after"] = now
            return True
        return False

    assert wait_for(replaced, 10), stack.worker_output()
    after = snapshot["after"]
    (replacement,) = after - before
    assert wait_for(lambda: replacement in listening_pids(stack.worker_output()), 15), stack.worker_output()
    assert f"Worker process {victim} died (signal SIGKILL)" in stack.worker_output()

    assert echo(stack, [f"after-kill-{i}" for i in range(10)]) == [f"after-kill-{i}" for i in range(10)]
    # The consumers ran in the pool's current children, never elsewhere.
    served_by = {int(echo(stack, ["?"], "/worker/pid/")[0]) for _ in range(6)}
    assert served_by <= after

    parent.send_signal(signal.SIGTERM)
    assert parent.wait(15) == 0
    assert not any(alive(pid) for pid in after)


@pytest.mark.slow
@pytest.mark.parametrize("args", [[], ["--threads", "2"], ["--processes", "2"]], ids=["single", "threads", "pool"])
def test_sigterm_lets_the_consumer_in_progress_finish(stack, args):
    stack.start_server()
    worker = stack.start_worker("-v", "2", *args)
    if "--processes" in args:
        assert wait_for(lambda: len(listening_pids(stack.worker_output())) == 2, 15), stack.worker_output()
    with ws_connect(stack.ws_url + "/worker/slow/") as ws:
        ws.send("1")
        # -v 2 logs each message as it is consumed: the slow consumer is now sleeping.
        assert wait_for(lambda: "websocket.receive /worker/slow/" in stack.worker_output(), 5), stack.worker_output()
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        reply = ws.recv(timeout=10)
        assert reply.startswith("slow:1:")
        assert worker.wait(10) == 0, stack.worker_output()
        assert time.monotonic() - started < 5
    assert "Traceback" not in stack.worker_output()


@pytest.mark.slow
def test_threads_serve_slow_consumers_in_parallel(stack):
    stack.start_server()
    stack.start_worker("--threads", "4")
    sockets = [ws_connect(stack.ws_url + "/worker/slow/") for _ in range(4)]
    try:
        started = time.monotonic()
        for ws in sockets:
            ws.send("1")
        replies = [ws.recv(timeout=10) for ws in sockets]
        elapsed = time.monotonic() - started
    finally:
        for ws in sockets:
            ws.close()
    assert all(r.startswith("slow:1:") for r in replies)
    assert elapsed < 2.5, f"4 one-second consumers took {elapsed:.1f}s: not in parallel"
    assert len({r.rsplit(":", 1)[1] for r in replies}) == 4  # four different worker threads


@pytest.mark.slow
def test_worker_survives_a_redis_restart(private_redis, key_prefix, tmp_path):
    """Complaint #8: workers died on a Redis ConnectionError. This one waits it out and serves on."""
    stack = Stack(private_redis.url, key_prefix, tmp_path)
    layer = RedisChannelLayer(hosts=[private_redis.url], prefix=key_prefix, blocking_timeout=1)
    try:
        worker = stack.start_worker()

        def roundtrip(text: str, timeout: float = 15.0) -> dict:
            # Play the interface server: a websocket.receive for /ws/echo/, then read the reply.
            reply = layer.new_channel("test.reply?")
            deadline = time.monotonic() + timeout
            while True:
                try:
                    layer.send("websocket.receive", {"reply_channel": reply, "path": "/ws/echo/", "text": text})
                    break
                except layer.LayerConnectionError:
                    assert time.monotonic() < deadline, "Redis did not come back"
                    time.sleep(0.1)
            return receive(layer, reply, timeout)[1]

        assert roundtrip("before") == {"text": "before"}
        private_redis.kill()
        time.sleep(2.5)  # the worker's blocking read fails and retries meanwhile
        assert worker.poll() is None, stack.worker_output()
        private_redis.restart()
        assert roundtrip("after") == {"text": "after"}
        assert worker.poll() is None
        output = stack.worker_output()
        # One outage line per outage, not per retry ("is unreachable (why); retrying"); a send the
        # outage lost is logged on its own, with the error's text ("is unreachable: why").
        assert output.count("is unreachable (") == 1, output
        assert "reachable again" in output
        assert "Traceback" not in output
    finally:
        layer.close()
        stack.stop()


# -- refusing to start, checks ---------------------------------------------------------------------


def test_runworker_refuses_the_in_memory_layer(stack):
    result = subprocess.run(
        [sys.executable, "-m", "django", "runworker"],
        cwd=ROOT,
        env=manage_env(stack, TEST_INMEMORY="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "CommandError" in result.stderr
    assert "only works inside one process" in result.stderr
    assert "Traceback" not in result.stderr


def test_runworker_refuses_when_globs_leave_no_channel(stack):
    result = subprocess.run(
        [sys.executable, "-m", "django", "runworker", "--only-channels", "nothing.*"],
        cwd=ROOT,
        env=manage_env(stack),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "No channels left to listen on" in result.stderr


def test_manage_check_reports_a_broken_routing_as_e003(stack):
    def check(**extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "django", "check"],
            cwd=ROOT,
            env=manage_env(stack, **extra),
            capture_output=True,
            text=True,
            timeout=60,
        )

    good = check()
    assert "channels_core.E" not in good.stdout + good.stderr
    bad = check(TEST_CHANNEL_ROUTING="tests.project.app.worker_consumers.broken_routing")
    assert bad.returncode == 1
    assert "channels_core.E003" in bad.stderr
    assert "tests.project.app.no_such_module.consumer" in bad.stderr


def test_prefetch_option_serves_everything_in_order(stack):
    stack.start_server()
    stack.start_worker("--prefetch", "4")
    messages = [f"prefetched-{i}" for i in range(20)]
    assert echo(stack, messages) == messages
