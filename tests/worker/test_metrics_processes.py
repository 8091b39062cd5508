"""Worker metrics and health through real `runworker` processes over real Redis.

One worker (`--metrics-port 0 --threads 2 --log-format json`) on a private
redis-server: messages sent through the Redis layer move every documented
`channels_worker_*` metric (the queue waits are the Redis layer's own), the
health endpoints answer, `/readyz` turns 503 while Redis is down and 200
again after, and every log line is JSON. A pool (`--processes 3`) on the
shared Redis: the parent's `/metrics` sums its children exactly, before and
after a child is SIGKILLed and replaced; its `/readyz` turns 503 while every
child is frozen (SIGSTOP: no heartbeat) and 200 after; the pool removes its
metrics directory when it stops.

Consumers: tests/worker/metrics_consumers.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from channels_core.layers import RedisChannelLayer
from channels_core.test.processes import ChildProcess, child_pids
from tests.interface_server.harness import ROOT
from tests.support.waiting import wait_for

from .metrics_consumers import FULL_CHANNEL, OK_SECONDS, SLOW_SECONDS

CAPACITY = 20
PORT_LINE = re.compile(r"Serving /metrics, /healthz and /readyz on http://127\.0\.0\.1:(\d+)")
DIR_LINE = re.compile(r"sums its processes' metrics from (\S+)")


def start_worker(redis_url: str, prefix: str, tmp_path: Path, *args: str, name: str = "worker") -> ChildProcess:
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="tests.project.settings",
        TEST_REDIS_URL=redis_url,
        TEST_LAYER_PREFIX=prefix,
        TEST_LAYER_CAPACITY=str(CAPACITY),
        TEST_DB_PATH=str(tmp_path / "unused.sqlite3"),
        TEST_CHANNEL_ROUTING="tests.worker.metrics_consumers.channel_routing",
    )
    return ChildProcess(
        [sys.executable, "-m", "django", "runworker", "--metrics-port", "0", *args],
        label=name,
        cwd=ROOT,
        env=env,
        log=tmp_path / f"{name}.log",
    )


def metrics_port(process: ChildProcess) -> int:
    process.wait_for("Serving /metrics", timeout=30)
    return int(PORT_LINE.search(process.output()).group(1))


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of `/metrics`: {(name, sorted label pairs): value}."""
    status, body = get(port, "/metrics")
    assert status == 200, body
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def sample(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def handled_per_process(directory: str) -> dict[str, float]:
    """{counter file: its metrics.ok messages} for the files of the pool's processes that handled some."""
    from prometheus_client.mmap_dict import MmapedDict

    out = {}
    for name in os.listdir(directory):
        if name.startswith("counter_"):
            for key, value, *_ in MmapedDict.read_all_values_from_file(os.path.join(directory, name)):
                if '"channels_worker_messages_total"' in key and "metrics.ok" in key and value:
                    out[name] = value
    return out


def client_layer(redis_url: str, prefix: str) -> RedisChannelLayer:
    return RedisChannelLayer(hosts=[redis_url], prefix=prefix, capacity=CAPACITY, blocking_timeout=1)


@pytest.mark.slow
def test_single_worker_metrics_health_and_json_logs(private_redis, key_prefix, tmp_path):
    layer = client_layer(private_redis.url, key_prefix)
    for i in range(CAPACITY):
        layer.send(FULL_CHANNEL, {"filler": i})
    waited = 0.5
    for i in range(5):
        layer.send("metrics.ok", {"n": i})
    time.sleep(waited)  # before the worker starts: each of the five waits at least this long in Redis
    worker = start_worker(private_redis.url, key_prefix, tmp_path, "--threads", "2", "--log-format", "json")
    try:
        port = metrics_port(worker)
        assert wait_for(lambda: sample(scrape(port), "channels_worker_messages_total", channel="metrics.ok") == 5, 20)
        for _ in range(2):
            layer.send("metrics.boom", {})
        layer.send("metrics.overflow", {})  # its send stays full for 2 s, then is dropped
        layer.send("metrics.slow", {})
        # Both threads busy at once: the overflow's consumer retries its send for 2 s, the slow one sleeps 1.5 s.
        assert wait_for(lambda: sample(scrape(port), "channels_worker_consumers_running") == 2, 10)
        layer.send("http.request", {"reply_channel": layer.new_channel("metrics.reply?")})  # no method, no path
        full_reply = layer.new_channel("metrics.reply?")
        for i in range(CAPACITY):
            layer.send(full_reply, {"filler": i})
        layer.send("http.request", {"reply_channel": full_reply})  # invalid, and its 400 cannot be sent

        def settled() -> bool:
            got = scrape(port)
            return (
                sample(got, "channels_worker_sends_dropped_total", channel="metrics.overflow", source="consumer") == 1
                and sample(got, "channels_worker_messages_total", channel="metrics.boom") == 2
                and sample(got, "channels_worker_invalid_messages_total", channel="http.request") == 2
                and sample(got, "channels_worker_messages_total", channel="metrics.slow") == 1
            )

        assert wait_for(settled, 20), worker.output()
        got = scrape(port)
        assert sample(got, "channels_worker_consumer_seconds_count", channel="metrics.ok") == 5
        assert sample(got, "channels_worker_consumer_seconds_sum", channel="metrics.ok") >= 5 * OK_SECONDS
        assert sample(got, "channels_worker_consumer_seconds_count", channel="metrics.boom") == 2
        assert (
            sample(got, "channels_worker_consumer_exceptions_total", channel="metrics.boom", exception="ValueError")
            == 2
        )
        assert sample(got, "channels_worker_messages_total", channel="metrics.overflow") == 1
        assert sample(got, "channels_worker_messages_total", channel="http.request") == 0
        assert sample(got, "channels_worker_sends_dropped_total", channel="http.request", source="answer") == 1
        assert sample(got, "channels_worker_consumer_seconds_sum", channel="metrics.slow") >= SLOW_SECONDS
        assert sample(got, "channels_worker_consumer_seconds_bucket", channel="metrics.slow", le="1.0") == 0
        assert sample(got, "channels_worker_consumer_seconds_bucket", channel="metrics.slow", le="2.5") == 1
        # Queue waits from the Redis layer itself: one per message received, the first five at least `waited`.
        assert sample(got, "channels_worker_queue_wait_seconds_count", channel="metrics.ok") == 5
        assert sample(got, "channels_worker_queue_wait_seconds_sum", channel="metrics.ok") >= 5 * waited
        assert sample(got, "channels_worker_queue_wait_seconds_bucket", channel="metrics.ok", le="0.25") == 0
        assert sample(got, "channels_worker_queue_wait_seconds_count", channel="metrics.boom") == 2
        assert sample(got, "channels_worker_threads") == 2
        assert sample(got, "channels_worker_consumers_running") == 0
        assert sample(got, "channels_worker_receive_errors_total") == 0
        assert sample(got, "process_resident_memory_bytes") > 0
        assert get(port, "/healthz") == (200, "ok\n")
        assert get(port, "/readyz") == (200, "ready\n")

        private_redis.kill()
        killed = time.monotonic()
        assert wait_for(lambda: get(port, "/readyz")[0] == 503, 15)
        down = time.monotonic() - killed
        status, body = get(port, "/readyz")
        assert status == 503 and "the channel layer is unreachable" in body, body
        assert get(port, "/healthz") == (200, "ok\n")  # the process is up: no restart wanted
        private_redis.start()
        restarted = time.monotonic()
        assert wait_for(lambda: get(port, "/readyz") == (200, "ready\n"), 20), get(port, "/readyz")
        print(f"/readyz 503 {down:.2f}s after Redis was killed, 200 {time.monotonic() - restarted:.2f}s after restart")
    finally:
        worker.stop()
    assert worker.returncode == 0, worker.output()

    lines = [line for line in worker.output().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    failures = [e for e in entries if e["message"].startswith("Consumer tests.worker.metrics_consumers.boom failed")]
    assert len(failures) == 2, lines
    assert failures[0]["channel_type"] == "metrics.boom" and "ValueError" in failures[0]["exception"]
    # The project's own loggers too (through the root logger), with their extra fields.
    app = [e for e in entries if e["logger"] == "metrics_test_app"]
    assert len(app) == 2 and app[0]["message"] == "about to fail" and app[0]["step"] == "boom"


@pytest.mark.slow
def test_pool_parent_serves_the_sum_of_its_processes(redis_url, key_prefix, tmp_path):
    layer = client_layer(redis_url, key_prefix)
    pool = start_worker(redis_url, key_prefix, tmp_path, "--processes", "3", "--threads", "1", name="pool")
    frozen: set[int] = set()
    try:
        port = metrics_port(pool)
        pool.wait_for("sums its processes' metrics from", timeout=10)  # logged just after the port
        directory = DIR_LINE.search(pool.output()).group(1)
        assert os.path.isdir(directory)
        assert wait_for(lambda: sample(scrape(port), "channels_worker_threads") == 3, 30), pool.output()
        assert wait_for(lambda: get(port, "/readyz") == (200, "ready\n"), 10), get(port, "/readyz")

        sent = 0

        def send(count: int) -> None:
            nonlocal sent
            for _ in range(count):
                # Under capacity, whatever the workers' pace.
                assert wait_for(lambda: layer.channel_statistics("metrics.ok")["messages_pending"] < CAPACITY, 10)
                layer.send("metrics.ok", {"n": sent})
                sent += 1

        send(60)
        handled = lambda: sample(scrape(port), "channels_worker_messages_total", channel="metrics.ok")  # noqa: E731
        assert wait_for(lambda: handled() == 60, 30), handled()
        got = scrape(port)
        assert sample(got, "channels_worker_consumer_seconds_count", channel="metrics.ok") == 60
        assert sample(got, "channels_worker_queue_wait_seconds_count", channel="metrics.ok") == 60
        # Several processes took part: the sum is over the counts of more than one process's file.
        per_process = handled_per_process(directory)
        assert len(per_process) >= 2 and sum(per_process.values()) == 60, per_process

        children = child_pids(pool.pid)
        victim = min(children)
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(child_pids(pool.pid) - children) == 1 and len(child_pids(pool.pid)) == 3, 20)
        # The dead child's running threads left the gauge; its replacement's joined; its counts stayed.
        assert wait_for(lambda: sample(scrape(port), "channels_worker_threads") == 3, 20)
        assert handled() == 60
        send(30)
        assert wait_for(lambda: handled() == 90, 30), handled()
        assert wait_for(lambda: get(port, "/readyz") == (200, "ready\n"), 10), get(port, "/readyz")

        # Every child frozen: their heartbeats stop, the pool is not ready; thawed, it is again.
        frozen = child_pids(pool.pid)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        stopped = time.monotonic()
        assert wait_for(lambda: get(port, "/readyz")[0] == 503, 15)
        print(f"pool /readyz 503 {time.monotonic() - stopped:.2f}s after every child was frozen")
        status, body = get(port, "/readyz")
        assert body.startswith("not ready: no worker process takes messages: ") and body.count("no heartbeat") == 3
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        frozen = set()
        assert wait_for(lambda: get(port, "/readyz") == (200, "ready\n"), 10), get(port, "/readyz")
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        pool.stop()
        layer.flush()
        layer.close()
    assert pool.returncode == 0, pool.output()
    assert not os.path.exists(directory)
