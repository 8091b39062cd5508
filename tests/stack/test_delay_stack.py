"""`manage.py rundelay` as a real process over Redis: on time, across restarts, past bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from channels_core.layers import RedisChannelLayer
from tests.interface_server.harness import ROOT


class DelayProcess:
    def __init__(self, stack) -> None:
        self.stack = stack
        self.log = stack.tmp_path / f"rundelay-{time.monotonic_ns()}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", "rundelay"],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT), **stack.env),
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while "Listening on asgi.delay" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rundelay did not start:\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text()

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(15)


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


@pytest.mark.timeout(120)
def test_messages_arrive_within_50_ms_of_their_due_time(stack, layer):
    delay = DelayProcess(stack)
    try:
        sent = {}
        for i, ms in enumerate([0, 50, 120, 300, 700, 1100, 1500, 80, 250, 20]):
            sent[i] = time.monotonic() + ms / 1000
            layer.send("asgi.delay", {"channel": "delayed.out", "delay": ms, "content": {"i": i}})
        got = collect(layer, "delayed.out", len(sent), timeout=10)
    finally:
        assert delay.terminate() == 0, delay.output()
    assert sorted(message["i"] for _, message in got) == sorted(sent)
    lateness = {message["i"]: arrived - sent[message["i"]] for arrived, message in got}
    assert all(-0.01 <= late <= 0.05 for late in lateness.values()), lateness


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_sigterm_restart_loses_nothing_and_repeats_nothing(stack, layer):
    delay = DelayProcess(stack)
    total = 300
    for i in range(total):  # due over the next 3 s, while the server is restarted
        layer.send("asgi.delay", {"channel": "restart.out", "delay": (i % 30) * 100, "content": {"i": i}})
    time.sleep(0.9)
    assert delay.terminate() == 0, delay.output()
    assert "Delay server stopped" in delay.output()
    for i in range(total, total + 50):  # sent while no delay server runs: they wait on asgi.delay
        layer.send("asgi.delay", {"channel": "restart.out", "delay": 100, "content": {"i": i}})
    time.sleep(0.5)
    delay = DelayProcess(stack)
    try:
        got = collect(layer, "restart.out", total + 50, timeout=20)
        time.sleep(0.5)
        got += collect(layer, "restart.out", 1, timeout=0.3)  # anything repeated would show up here
    finally:
        assert delay.terminate() == 0, delay.output()
    numbers = sorted(message["i"] for _, message in got)
    assert numbers == list(range(total + 50)), (len(numbers), len(set(numbers)))


def test_bad_messages_are_logged_and_skipped_and_the_server_goes_on(stack, layer):
    delay = DelayProcess(stack)
    try:
        layer.send("asgi.delay", {"channel": "x", "content": {}})
        layer.send("asgi.delay", {"channel": "not a name", "delay": 1, "content": {}})
        layer.send("asgi.delay", {"channel": "fine.out", "delay": 10, "content": {"ok": 1}})
        got = collect(layer, "fine.out", 1, timeout=5)
    finally:
        delay.terminate()
    assert [message for _, message in got] == [{"ok": 1}]
    output = delay.output()
    assert output.count("Skipped an invalid asgi.delay message") == 2, output
    assert "missing 'delay'" in output


def test_rundelay_refuses_the_in_memory_layer(stack):
    stack.env["TEST_INMEMORY"] = "1"
    result = stack.manage("rundelay")
    assert result.returncode != 0
    assert "only works inside one process" in result.stderr
