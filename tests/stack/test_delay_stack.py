"""`manage.py rundelay` as a real process over Redis: on time, across restarts, past bad input."""

from __future__ import annotations

import os
import sys
import time

import pytest

from channels_core.layers import RedisChannelLayer
from channels_core.test.processes import ChildProcess
from tests.interface_server.harness import ROOT


def start_delay(stack) -> ChildProcess:
    """`manage.py rundelay` against the stack's settings, once it listens."""
    delay = ChildProcess(
        [sys.executable, "-m", "django", "rundelay"],
        label="rundelay",
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), **stack.env),
        log=stack.tmp_path / f"rundelay-{time.monotonic_ns()}.log",
    )
    delay.wait_for("Listening on asgi.delay", timeout=20)
    return delay


@pytest.fixture
def layer(stack):
    layer = RedisChannelLayer(hosts=[stack.env["TEST_REDIS_URL"]], prefix=stack.env["TEST_LAYER_PREFIX"], capacity=1000)
    yield layer
    layer.close()


def collect(layer, channel: str, count: int, timeout: float) -> list[tuple[float, dict]]:
    """(arrival time, message) for `count` messages on `channel`."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for _, message in layer.receive_batch([channel], 100, block=True, timeout=0.2):
            got.append((time.monotonic(), message))
    return got


@pytest.mark.alone
@pytest.mark.timeout(120)
def test_messages_arrive_within_50_ms_of_their_due_time(stack, layer):
    delay = start_delay(stack)
    try:
        sent = {}
        for i, ms in enumerate([0, 50, 120, 300, 700, 1100, 1500, 80, 250, 20]):
            sent[i] = time.monotonic() + ms / 1000
            layer.send("asgi.delay", {"channel": "delayed.out", "delay": ms, "content": {"i": i}})
        got = collect(layer, "delayed.out", len(sent), timeout=10)
    finally:
        assert delay.stop() == 0, delay.output()
    assert sorted(message["i"] for _, message in got) == sorted(sent)
    lateness = {message["i"]: arrived - sent[message["i"]] for arrived, message in got}
    assert all(-0.01 <= late <= 0.05 for late in lateness.values()), lateness


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_sigterm_restart_loses_nothing_and_repeats_nothing(stack, layer):
    delay = start_delay(stack)
    total = 300
    for i in range(total):  # due over the next 3 s, while the server is restarted
        layer.send("asgi.delay", {"channel": "restart.out", "delay": (i % 30) * 100, "content": {"i": i}})
    time.sleep(0.9)
    assert delay.stop() == 0, delay.output()
    assert "Delay server stopped" in delay.output()
    for i in range(total, total + 50):  # sent while no delay server runs: they wait on asgi.delay
        layer.send("asgi.delay", {"channel": "restart.out", "delay": 100, "content": {"i": i}})
    time.sleep(0.5)
    delay = start_delay(stack)
    try:
        got = collect(layer, "restart.out", total + 50, timeout=20)
        time.sleep(0.5)
        got += collect(layer, "restart.out", 1, timeout=0.3)  # anything repeated would show up here
    finally:
        assert delay.stop() == 0, delay.output()
    numbers = sorted(message["i"] for _, message in got)
    assert numbers == list(range(total + 50)), (len(numbers), len(set(numbers)))


def test_bad_messages_are_logged_and_skipped_and_the_server_goes_on(stack, layer):
    delay = start_delay(stack)
    try:
        layer.send("asgi.delay", {"channel": "x", "content": {}})
        layer.send("asgi.delay", {"channel": "not a name", "delay": 1, "content": {}})
        layer.send("asgi.delay", {"channel": "fine.out", "delay": 10, "content": {"ok": 1}})
        got = collect(layer, "fine.out", 1, timeout=5)
    finally:
        delay.stop()
    assert [message for _, message in got] == [{"ok": 1}]
    output = delay.output()
    assert output.count("Skipped an invalid asgi.delay message") == 2, output
    assert "missing 'delay'" in output


def test_rundelay_refuses_the_in_memory_layer(stack):
    stack.env["TEST_INMEMORY"] = "1"
    result = stack.manage("rundelay")
    assert result.returncode != 0
    assert "only works inside one process" in result.stderr
