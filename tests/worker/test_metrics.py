"""Worker metrics and health in-process: every `channels_worker_*` metric moves as documented.

The worker runs its real loop in a thread on the in-memory layer; queue
waits come from a small fake of the `queue_wait` extension (the waits are
computed from a send time the test puts in each message), so the wiring is
checked independently of any real layer's figures. The real processes,
Redis's own queue waits and the pool's aggregation are in
tests/worker/test_metrics_processes.py.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from channels_core import consumer_sends
from channels_core.asgi import ChannelLayerWrapper
from channels_core.channel import Channel
from channels_core.exceptions import ConsumeLater
from channels_core.layers import InMemoryChannelLayer
from channels_core.layers.errors import LayerConnectionError
from routing import route
from tests.support.waiting import wait_for
from worker import Worker, WorkerGroup
from worker.health import HealthServer, layer_problem, worker_problem
from worker.metrics import (
    MULTIPROC_ENV,
    PROCESS_LABEL,
    WorkerMetrics,
    channel_label,
    exposition,
    single_process_registry,
)
from worker.metrics_pool import BEAT_STALE, HeartbeatBoard, PoolMonitor

CONSUMER_SLEEP = 0.02


class WaitsLayer(InMemoryChannelLayer):
    """In-memory layer with a fake `queue_wait`: a message's wait is now minus its `sent_at` (if it has one)."""

    extensions = [*InMemoryChannelLayer.extensions, "queue_wait"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._local = threading.local()
        self.fail_receives = 0

    def receive_batch(self, channels, max_messages=100, block=False, timeout=None):
        if self.fail_receives > 0:
            self.fail_receives -= 1
            raise LayerConnectionError("fake outage")
        batch = super().receive_batch(channels, max_messages, block, timeout)
        now = time.time()
        self._local.waits = [now - content["sent_at"] for _, content in batch if "sent_at" in content]
        return batch

    def last_queue_waits(self) -> list[float]:
        return list(getattr(self._local, "waits", []))


def ok(message, **kwargs):
    time.sleep(CONSUMER_SLEEP)


def boom(message, **kwargs):
    raise ValueError("consumer bug")


def overflow(message, **kwargs):
    Channel("t.full", channel_layer=message.channel_layer).send({"n": 1})  # buffered; t.full is kept full by the test


def later(message, **kwargs):
    if message.content.get("filler"):
        return
    # Fill our own channel first, so the requeue finds it full and drops the message.
    Channel("t.later", channel_layer=message.channel_layer).send({"filler": True}, immediately=True)
    raise ConsumeLater()


RELEASE = threading.Event()


def block(message, **kwargs):
    RELEASE.wait(10)


ROUTES = [
    route("t.block", block),
    route("t.ok", ok),
    route("t.boom", boom),
    route("t.overflow", overflow),
    route("t.later", later),
    route("http.request", ok),
]


@pytest.fixture
def layer():
    small = {"t.full": 1, "t.later": 1, "t.reply?*": 1}
    return ChannelLayerWrapper(WaitsLayer(channel_capacity=small, blocking_timeout=0.05), "test", ROUTES)


@pytest.fixture
def fast_flush(monkeypatch):
    monkeypatch.setattr(consumer_sends, "FLUSH_RETRY_SECONDS", 0.1)


def value(metrics: WorkerMetrics, name: str, **labels) -> float:
    metrics.flush()  # as before a scrape
    got = metrics.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


class Running:
    def __init__(self, worker) -> None:
        self.worker = worker
        self.thread = threading.Thread(target=worker.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.worker.termed = True
        for sub in getattr(self.worker, "workers", ()):
            sub.termed = True
        self.thread.join(10)
        assert not self.thread.is_alive()


def test_channel_label_folds_random_parts():
    assert channel_label("http.request") == "http.request"
    assert channel_label("interface.response.ab12cd!ef34") == PROCESS_LABEL
    assert channel_label("interface.response.zz99!") == PROCESS_LABEL
    assert channel_label("http.request.body?x1y2z3") == "http.request.body?"


def test_every_metric_moves_with_the_messages_that_cause_it(layer, fast_flush):
    metrics = WorkerMetrics()
    worker = Worker(layer, signal_handlers=False, metrics=metrics)
    single_process_registry(metrics, worker)
    layer.send("t.full", {"filler": True})  # capacity 1: t.full is now full
    for _ in range(3):
        layer.send("t.ok", {"sent_at": time.time() - 0.5})  # each waited at least 0.5 s (the fake's clock)
    layer.send("t.boom", {})
    layer.send("t.overflow", {})
    layer.send("t.later", {})
    layer.send("http.request", {"reply_channel": "t.reply?abc"})  # no method or path: invalid
    with Running(worker):
        assert wait_for(lambda: worker.handled >= 7 and worker.invalid.total >= 1, 10)
        assert value(metrics, "channels_worker_threads") == 1

    assert value(metrics, "channels_worker_messages_total", channel="t.ok") == 3
    assert value(metrics, "channels_worker_consumer_seconds_count", channel="t.ok") == 3
    assert value(metrics, "channels_worker_consumer_seconds_sum", channel="t.ok") >= 3 * CONSUMER_SLEEP
    assert value(metrics, "channels_worker_queue_wait_seconds_count", channel="t.ok") == 3
    assert value(metrics, "channels_worker_queue_wait_seconds_sum", channel="t.ok") >= 3 * 0.5
    # Messages without a send time gave no wait: nothing is made up.
    assert value(metrics, "channels_worker_queue_wait_seconds_count", channel="t.boom") == 0

    assert value(metrics, "channels_worker_messages_total", channel="t.boom") == 1
    assert value(metrics, "channels_worker_consumer_exceptions_total", channel="t.boom", exception="ValueError") == 1
    assert value(metrics, "channels_worker_consumer_exceptions_total", channel="t.ok", exception="ValueError") == 0
    assert value(metrics, "channels_worker_sends_dropped_total", channel="t.overflow", source="consumer") == 1
    assert value(metrics, "channels_worker_sends_dropped_total", channel="t.later", source="requeue") == 1
    assert value(metrics, "channels_worker_invalid_messages_total", channel="http.request") == 1
    assert value(metrics, "channels_worker_messages_total", channel="http.request") == 0
    # The invalid request named a reply channel with room: answered, not dropped.
    assert value(metrics, "channels_worker_sends_dropped_total", channel="http.request", source="answer") == 0
    assert value(metrics, "channels_worker_consumers_running") == 0
    assert value(metrics, "channels_worker_threads") == 0


def test_a_refused_answer_to_a_full_reply_channel_counts_as_dropped(layer):
    metrics = WorkerMetrics()
    worker = Worker(layer, signal_handlers=False, metrics=metrics)
    reply = layer.new_channel("t.reply?")
    layer.send(reply, {"already": "full"})
    worker.handle("http.request", {"reply_channel": reply})  # invalid: no method or path
    assert value(metrics, "channels_worker_invalid_messages_total", channel="http.request") == 1
    assert value(metrics, "channels_worker_sends_dropped_total", channel="http.request", source="answer") == 1


def test_a_group_shares_one_set_of_metrics_and_counts_its_threads(layer):
    metrics = WorkerMetrics()
    group = WorkerGroup(layer, n_threads=3, signal_handlers=False, metrics=metrics)
    single_process_registry(metrics, group)
    with Running(group):
        assert wait_for(lambda: value(metrics, "channels_worker_threads") == 3, 5)
        for _ in range(6):
            layer.send("t.ok", {})
        assert wait_for(lambda: value(metrics, "channels_worker_messages_total", channel="t.ok") == 6, 10)
    assert value(metrics, "channels_worker_threads") == 0


def test_receive_errors_are_counted_and_make_the_worker_unready(layer):
    metrics = WorkerMetrics()
    worker = Worker(layer, signal_handlers=False, metrics=metrics)
    assert worker_problem(worker) == "the worker loop has not read from the channel layer yet"
    layer.channel_layer.fail_receives = 10**6
    with Running(worker):
        assert wait_for(lambda: value(metrics, "channels_worker_receive_errors_total") >= 2, 5)
        problem = worker_problem(worker)
        assert problem is not None and "fails" in problem and "fake outage" in problem
        layer.channel_layer.fail_receives = 0
        assert wait_for(lambda: worker_problem(worker) is None, 5)
    assert worker_problem(worker) == "shutting down"


def test_a_worker_whose_threads_are_all_in_consumers_too_long_is_unready(layer):
    worker = Worker(layer, signal_handlers=False)
    worker.last_receive = time.monotonic() - 30
    worker.in_job = True
    assert "no worker thread has read" in worker_problem(worker, stale_after=10)
    assert "1 of 1 busy" in worker_problem(worker, stale_after=10)
    assert worker_problem(worker, stale_after=60) is None


def test_without_metrics_nothing_is_recorded_and_the_loop_still_runs(layer):
    worker = Worker(layer, signal_handlers=False)
    layer.send("t.ok", {"sent_at": time.time()})
    with Running(worker):
        assert wait_for(lambda: worker.handled == 1, 5)
    assert worker.metrics is None and not worker._queue_waits


def test_a_layer_without_queue_wait_records_no_wait():
    plain = ChannelLayerWrapper(InMemoryChannelLayer(blocking_timeout=0.05), "test", ROUTES)
    plain.channel_layer.extensions = [e for e in plain.channel_layer.extensions if e != "queue_wait"]
    metrics = WorkerMetrics()
    worker = Worker(plain, signal_handlers=False, metrics=metrics)
    plain.send("t.ok", {})
    with Running(worker):
        assert wait_for(lambda: worker.handled == 1, 5)
    assert value(metrics, "channels_worker_messages_total", channel="t.ok") == 1
    assert value(metrics, "channels_worker_queue_wait_seconds_count", channel="t.ok") == 0


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_health_server_answers_each_endpoint(layer):
    metrics = WorkerMetrics()
    metrics.messages.labels("t.ok").inc()
    state = {"problem": "the worker loop has not read from the channel layer yet"}
    tally = metrics.tally()
    tally.consumed("t.ok", 0.003)
    server = HealthServer(
        "127.0.0.1", 0, lambda: exposition(metrics.registry, metrics), lambda: state["problem"]
    ).start()
    try:
        base = f"http://127.0.0.1:{server.address[1]}"
        assert get(base + "/healthz") == (200, "ok\n")
        assert get(base + "/readyz") == (503, "not ready: the worker loop has not read from the channel layer yet\n")
        state["problem"] = None
        assert get(base + "/readyz") == (200, "ready\n")
        status, body = get(base + "/metrics")
        # One from the counter itself, one from the tally, flushed by the scrape.
        assert status == 200 and 'channels_worker_messages_total{channel="t.ok"} 2.0' in body
        assert get(base + "/other")[0] == 404
    finally:
        server.stop()


def test_layer_problem_names_the_error():
    class Down:
        def ping(self):
            raise LayerConnectionError("connection refused")

    assert layer_problem(object()) is None
    assert layer_problem(Down()) == "the channel layer is unreachable (LayerConnectionError: connection refused)"


def test_pool_readiness_from_the_heartbeat_board(monkeypatch):
    before = os.environ.get(MULTIPROC_ENV)
    monitor = PoolMonitor(2, layer=None)
    try:
        assert os.path.isdir(monitor.directory) and os.environ[MULTIPROC_ENV] == monitor.directory

        class Slot:
            def __init__(self, pid):
                self.pid = pid

        class FakePool:
            stopping = False
            slots = [Slot(101), Slot(None)]

        monitor.pool = FakePool()
        assert monitor.ready().startswith("no worker process takes messages: process 0 (pid 101): starting")
        monitor.board.write(0, "reading from the channel layer fails for 1.0s (X: y)")
        assert "process 0 (pid 101): reading from the channel layer fails" in monitor.ready()
        assert "process 1: restarting" in monitor.ready()
        monitor.board.write(0, None, threads=4, running=3)
        assert monitor.ready() is None
        body = monitor.metrics()[1].decode()
        assert "channels_worker_threads 4.0" in body and "channels_worker_consumers_running 3.0" in body
        FakePool.slots[0].pid = None  # the child died: its threads no longer count
        assert "channels_worker_threads 0.0" in monitor.metrics()[1].decode()
        FakePool.slots[0].pid = 101
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + BEAT_STALE + 1)
        assert "no heartbeat for" in monitor.ready()
        monkeypatch.setattr(time, "time", real_time)
        FakePool.stopping = True
        assert monitor.ready() == "shutting down"
    finally:
        monitor.pool_stopped()
    assert not os.path.exists(monitor.directory)
    assert os.environ.get(MULTIPROC_ENV) == before


def test_a_child_file_not_yet_sized_does_not_fail_the_scrape():
    """A child creates its value file before it sizes it: a scrape at that instant found 0 bytes (500)."""
    monitor = PoolMonitor(1, layer=None)
    try:
        with open(os.path.join(monitor.directory, "counter_4242.db"), "wb"):
            pass
        body = monitor.metrics()[1].decode()
        assert "channels_worker_threads 0.0" in body
    finally:
        monitor.pool_stopped()


def test_heartbeat_board_round_trips_and_clears():
    board = HeartbeatBoard(3)
    board.write(2, "é" * 300)  # longer than a record: cut, never spilling into the next slot
    when, text = board.read(2)
    assert abs(when - time.time()) < 5 and text and set(text) <= {"é", "\ufffd"}
    assert board.read(1) == (0.0, "")
    board.clear(2)
    assert board.read(2) == (0.0, "")
    board.close()


def test_each_worker_metrics_has_its_own_registry():
    first, second = WorkerMetrics(), WorkerMetrics(CollectorRegistry())
    first.messages.labels("x").inc()
    assert second.registry.get_sample_value("channels_worker_messages_total", {"channel": "x"}) is None


def test_consumers_running_counts_the_threads_inside_a_consumer(layer):
    metrics = WorkerMetrics()
    group = WorkerGroup(layer, n_threads=2, signal_handlers=False, metrics=metrics)
    single_process_registry(metrics, group)
    RELEASE.clear()
    with Running(group):
        layer.send("t.block", {})
        assert wait_for(lambda: value(metrics, "channels_worker_consumers_running") == 1, 5)
        RELEASE.set()
        assert wait_for(lambda: value(metrics, "channels_worker_consumers_running") == 0, 5)
        assert value(metrics, "channels_worker_messages_total", channel="t.block") == 1


def test_flushed_tallies_expose_exactly_what_prometheus_observe_would():
    """The tallies write into prometheus_client's histogram internals: this catches a change there."""
    metrics = WorkerMetrics()
    reference = CollectorRegistry()
    from prometheus_client import Histogram

    from worker.metrics import CONSUMER_BUCKETS

    expected = Histogram(
        "channels_worker_consumer_seconds", "x", ["channel"], buckets=CONSUMER_BUCKETS, registry=reference
    )
    tallies = [metrics.tally(), metrics.tally()]
    samples = [0.0, 0.0004, 0.001, 0.0011, 0.3, 2.5, 29.0, 31.0, 400.0]
    for round_ in range(3):
        for i, seconds in enumerate(samples):
            tallies[i % 2].consumed("http.request", seconds)
            expected.labels("http.request").observe(seconds)
            if i == 4:
                metrics.flush()  # flushes in the middle lose and repeat nothing
        metrics.flush()
        for suffix in ("_count", "_sum"):
            name = "channels_worker_consumer_seconds" + suffix
            assert metrics.registry.get_sample_value(name, {"channel": "http.request"}) == pytest.approx(
                reference.get_sample_value(name, {"channel": "http.request"})
            )
        for bound in [*CONSUMER_BUCKETS, float("inf")]:
            le = {"channel": "http.request", "le": str(float(bound)) if bound != float("inf") else "+Inf"}
            got = metrics.registry.get_sample_value("channels_worker_consumer_seconds_bucket", le)
            assert got is not None
            assert got == reference.get_sample_value("channels_worker_consumer_seconds_bucket", le), (round_, bound)
        assert metrics.registry.get_sample_value("channels_worker_messages_total", {"channel": "http.request"}) == len(
            samples
        ) * (round_ + 1)


def test_runworker_refuses_a_metrics_port_out_of_range():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--metrics-port must be between 0 and 65535"):
        call_command("runworker", "--metrics-port", "70000")


def test_a_pool_whose_metrics_port_is_taken_stops_at_once_and_leaves_nothing():
    import socket

    from django.core.management import CommandError, call_command

    before = os.environ.get(MULTIPROC_ENV)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match=f"Cannot serve metrics on 127.0.0.1:{port}"):
            call_command("runworker", "--processes", "2", "--metrics-port", str(port))
    assert os.environ.get(MULTIPROC_ENV) == before


def test_consumer_drops_from_a_store_whose_flush_returns_no_count():
    from types import SimpleNamespace

    metrics = WorkerMetrics()
    store = SimpleNamespace(dropped=5)  # dropped before this worker started: not ours
    metrics.start_counting_store(store)
    store.dropped = 7
    metrics.consumer_sends_dropped("t.a", None, store)
    metrics.consumer_sends_dropped("t.b", None, store)  # nothing new
    assert value(metrics, "channels_worker_sends_dropped_total", channel="t.a", source="consumer") == 2
    assert value(metrics, "channels_worker_sends_dropped_total", channel="t.b", source="consumer") == 0
    metrics.consumer_sends_dropped("t.b", 3, store)  # a store that returns its count: taken as is
    assert value(metrics, "channels_worker_sends_dropped_total", channel="t.b", source="consumer") == 3
