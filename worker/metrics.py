"""Prometheus metrics of a worker process (`runworker --metrics-port`), all named `channels_worker_*`.

`WorkerMetrics` owns the metric objects. A `Worker` given one (only with
`--metrics-port`: otherwise it pays nothing) counts each message's consumer
time and queue wait in its thread's own `Tally` (plain Python numbers, no
lock), which `WorkerMetrics.flush` moves into the Prometheus histograms and
counter before each scrape (one process) or every half second (a pool
child); the rare events (exceptions, drops, invalid messages) go to their
counters at once. `channels_worker_threads` and `_consumers_running` are read
from the worker's threads when scraped (`WorkerStateCollector`).

Labels stay bounded: `channel` is the channel a consumer ran on (the routed
channels), with process-specific channels (`!`, reply channels among them)
folded to `process!` and single-reader channels to their fixed part
(`http.request.body?`), by `channel_label`; `exception` is an exception's
class name, bounded by the code.

Several processes (`runworker --processes N`, `worker.pool`): when
`PROMETHEUS_MULTIPROC_DIR` is set (the pool sets it before forking), the
values live in files of that directory, one set per process, and the pool's
parent sums them with prometheus_client's `MultiProcessCollector`
(`worker.metrics_pool`). `WorkerMetrics` switches prometheus_client to those
file-backed values even when prometheus_client was imported before the
variable was set (it reads it once, at import).
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

CONSUMER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds; consumers range from sub-millisecond echoes to multi-second jobs on their own channel."""

QUEUE_WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds; a backlog can keep messages waiting up to the layer's expiry (60 s by default)."""

PROCESS_LABEL = "process!"
"""The `channel` label of every process-specific channel (a name with `!`, reply channels among them)."""

SOURCES = ("consumer", "requeue", "answer")
"""`source` label values of `channels_worker_sends_dropped_total`."""

_multiproc_pid: int | None = None


def channel_label(channel: str) -> str:
    """The `channel` label for a channel name: its random part folded away, so the label set stays bounded.

    `interface.response.ab12!cd34` -> `process!`; `http.request.body?x1y2` -> `http.request.body?`;
    any other name is itself.
    """
    if "!" in channel:
        return PROCESS_LABEL
    mark = channel.find("?")
    return channel if mark < 0 else channel[: mark + 1]


def use_multiprocess_values() -> bool:
    """Make metrics created from now on in this process file-backed if `PROMETHEUS_MULTIPROC_DIR` is set.

    prometheus_client chooses its value class when it is first imported; a
    pool child may have imported it (in the parent) before the pool set the
    variable. Returns True when the values are file-backed.
    """
    global _multiproc_pid
    if not os.environ.get(MULTIPROC_ENV):
        return False
    if _multiproc_pid != os.getpid():
        values.ValueClass = values.MultiProcessValue()
        _multiproc_pid = os.getpid()
    return True


class WorkerMetrics:
    """The metric objects of one worker process, shared by its threads (prometheus_client is thread-safe).

    `registry` is where they are registered (a new `CollectorRegistry` by
    default, so several `WorkerMetrics` may live in one process, as in tests).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.multiprocess = use_multiprocess_values()
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.consumer_seconds = Histogram(
            "channels_worker_consumer_seconds",
            "Time a consumer ran, its buffered sends included, per channel",
            ["channel"],
            buckets=CONSUMER_BUCKETS,
            registry=reg,
        )
        self.messages = Counter(
            "channels_worker_messages",
            "Messages handed to a consumer (whether it succeeded or raised), per channel",
            ["channel"],
            registry=reg,
        )
        self.exceptions = Counter(
            "channels_worker_consumer_exceptions",
            "Consumers that raised (the client got a 500 or a close 1011), per channel and exception class",
            ["channel", "exception"],
            registry=reg,
        )
        self.queue_wait = Histogram(
            "channels_worker_queue_wait_seconds",
            "Time a message waited in its channel, from its send to its receive by a worker, per channel "
            "(only with layers offering the queue_wait extension)",
            ["channel"],
            buckets=QUEUE_WAIT_BUCKETS,
            registry=reg,
        )
        self.sends_dropped = Counter(
            "channels_worker_sends_dropped",
            "Sends dropped because the destination stayed full, per channel consumed and source "
            "(consumer: a consumer's send; requeue: a ConsumeLater requeue; answer: the worker's own 400/500/close)",
            ["channel", "source"],
            registry=reg,
        )
        self.invalid_messages = Counter(
            "channels_worker_invalid_messages",
            "Messages of the wrong shape dropped before routing, per channel",
            ["channel"],
            registry=reg,
        )
        self.receive_errors = Counter(
            "channels_worker_receive_errors",
            "Failed reads from the channel layer (each retried with backoff)",
            registry=reg,
        )
        self._lock = threading.Lock()
        self._store_seen: int | None = None
        self._tallies: list[Tally] = []
        self._flushed: dict[int, list[float]] = {}  # id(_Accumulator) -> its buckets and sum at the last flush
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}

    # -- the hot path: per-thread tallies, moved into the metrics by `flush` ------------------

    def tally(self) -> Tally:
        """A new `Tally` for one worker thread (only that thread may write to it)."""
        tally = Tally()
        with self._lock:
            self._tallies.append(tally)
        return tally

    def flush(self) -> None:
        """Add what every thread's tally counted since the last flush to the Prometheus metrics.

        Called before a scrape (one process), every `BEAT_INTERVAL` by a pool
        child's heartbeat thread (the pool's parent reads the files), and when
        a worker loop ends. A tally is only read here, never reset, so a
        thread writing meanwhile loses nothing: the rest moves at the next flush.
        """
        with self._lock:
            for tally in self._tallies:
                # tuple(): one C-level copy, safe while the worker thread adds a channel.
                for channel, accumulator in tuple(tally.consumer.items()):
                    self._move(accumulator, *self._consumer_children(channel))
                for channel, accumulator in tuple(tally.waits.items()):
                    self._move(accumulator, self._wait_child(channel), None)

    def _consumer_children(self, channel: str) -> tuple[Any, Any]:
        key = ("consumer", channel)
        children = self._children.get(key)
        if children is None:
            label = channel_label(channel)
            children = self._children[key] = (self.consumer_seconds.labels(label), self.messages.labels(label))
        return children

    def _wait_child(self, channel: str) -> Any:
        key = ("wait", channel)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.queue_wait.labels(channel_label(channel)), None)
        return children[0]

    def _move(self, accumulator: _Accumulator, histogram: Any, counter: Any) -> None:
        # Buckets before the sum, the reverse of the writer: a sum may lag its bucket by one
        # observation until the next flush, never count one the buckets have not.
        buckets = list(accumulator.buckets)
        total = accumulator.sum
        before = self._flushed.get(id(accumulator))
        if before is None:
            before = self._flushed[id(accumulator)] = [0] * (len(buckets) + 1)
        added = 0
        # prometheus_client keeps a histogram's buckets uncumulated (`_buckets`) and its sum in
        # `_sum`: adding to them is what `observe` does, once per value (tests/worker/test_metrics.py
        # compares the two, so a change in prometheus_client shows there).
        for index, count in enumerate(buckets):
            delta = count - before[index]
            if delta:
                histogram._buckets[index].inc(delta)
                added += delta
                before[index] = count
        if total != before[-1]:
            histogram._sum.inc(total - before[-1])
            before[-1] = total
        if counter is not None and added:
            counter.inc(added)

    def failed(self, channel: str, exc: BaseException) -> None:
        """A consumer on `channel` raised `exc`."""
        self.exceptions.labels(channel_label(channel), type(exc).__name__).inc()

    def invalid(self, channel: str) -> None:
        """A message of the wrong shape was dropped on `channel`."""
        self.invalid_messages.labels(channel_label(channel)).inc()

    def dropped(self, channel: str, source: str, count: int = 1) -> None:
        """`count` sends made while handling a message on `channel` were dropped (`source`: see `SOURCES`)."""
        if count > 0:
            self.sends_dropped.labels(channel_label(channel), source).inc(count)

    def consumer_sends_dropped(self, channel: str, flushed: Any, store: Any) -> None:
        """Count the consumer sends the last flush dropped.

        `flushed` is what `pending_message_store.flush()` returned: the
        number this thread's flush dropped. A store whose `flush()` returns
        nothing (an older one) is read through its process-wide `dropped`
        total instead (the increase since the last look, under a lock, so each
        drop is counted once; with several threads flushing at the same moment
        a drop may then be put on the other thread's channel).
        """
        if isinstance(flushed, int) and not isinstance(flushed, bool):
            self.dropped(channel, "consumer", flushed)
            return
        total = getattr(store, "dropped", 0)
        if total == self._store_seen:  # the usual case, without the lock
            return
        with self._lock:
            seen = self._store_seen if self._store_seen is not None else 0
            self._store_seen = total
        self.dropped(channel, "consumer", total - seen)

    def start_counting_store(self, store: Any) -> None:
        """Ignore the drops `store` counted before this worker started (another worker in this process)."""
        with self._lock:
            if self._store_seen is None:
                self._store_seen = getattr(store, "dropped", 0)


class _Accumulator:
    """One channel's histogram in one thread: uncumulated bucket counts and the sum."""

    __slots__ = ("buckets", "sum")

    def __init__(self, buckets: int) -> None:
        self.buckets = [0] * buckets
        self.sum = 0.0


class Tally:
    """What one worker thread observed, in plain Python numbers: a few hundred nanoseconds a message.

    Only its own thread writes it; `WorkerMetrics.flush` reads it. Taking a
    lock per message (as each Prometheus observation does) cost a worker
    several microseconds a message (benchmarks/worker_metrics_bench.py).
    """

    __slots__ = ("consumer", "waits")

    def __init__(self) -> None:
        self.consumer: dict[str, _Accumulator] = {}
        self.waits: dict[str, _Accumulator] = {}

    def consumed(self, channel: str, seconds: float) -> None:
        """A consumer ran on `channel` for `seconds` (raised or not)."""
        accumulator = self.consumer.get(channel)
        if accumulator is None:
            accumulator = self.consumer[channel] = _Accumulator(len(CONSUMER_BUCKETS) + 1)
        # bisect_left: the first bound >= seconds, Prometheus's `le`; past the last one, +Inf.
        accumulator.buckets[bisect_left(CONSUMER_BUCKETS, seconds)] += 1
        accumulator.sum += seconds

    def received(self, batch: list[tuple[str, Any]], waits: list[float]) -> None:
        """The queue wait of each message of a batch (`waits` from `last_queue_waits()`, in order)."""
        for (channel, _), wait in zip(batch, waits, strict=False):
            accumulator = self.waits.get(channel)
            if accumulator is None:
                accumulator = self.waits[channel] = _Accumulator(len(QUEUE_WAIT_BUCKETS) + 1)
            wait = max(0.0, wait)
            accumulator.buckets[bisect_left(QUEUE_WAIT_BUCKETS, wait)] += 1
            accumulator.sum += wait


def exposition(registry: CollectorRegistry, metrics: WorkerMetrics | None = None) -> tuple[str, bytes]:
    """`(content type, body)` of `/metrics` for `registry`, in the Prometheus text format.

    `metrics`: flushed first, so the page holds every message handled so far.
    """
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

    if metrics is not None:
        metrics.flush()
    return CONTENT_TYPE_LATEST, generate_latest(registry)


THREADS_HELP = "Worker threads taking messages"
RUNNING_HELP = "Worker threads holding messages now, in a consumer (compare with channels_worker_threads)"


def state_families(threads: float, running: float) -> list[GaugeMetricFamily]:
    """`channels_worker_threads` and `channels_worker_consumers_running` with these values."""
    return [
        GaugeMetricFamily("channels_worker_threads", THREADS_HELP, value=threads),
        GaugeMetricFamily("channels_worker_consumers_running", RUNNING_HELP, value=running),
    ]


class WorkerStateCollector:
    """The two gauges of a worker's threads, read from the worker when scraped (nothing on the hot path).

    `worker` is a `Worker`, `WorkerGroup` or `SweepingWorker`; a thread is
    running a consumer while it holds messages it took (`in_job`).
    """

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    def collect(self) -> list[GaugeMetricFamily]:
        threads = [self.worker, *getattr(self.worker, "workers", ())]
        live = 0 if getattr(self.worker, "termed", False) else len(threads)
        return state_families(live, sum(1 for t in threads if getattr(t, "in_job", False)))


def single_process_registry(metrics: WorkerMetrics, worker: Any) -> CollectorRegistry:
    """`metrics.registry` plus the thread gauges of `worker` and the standard `process_*` metrics."""
    from prometheus_client import ProcessCollector

    ProcessCollector(registry=metrics.registry)
    metrics.registry.register(WorkerStateCollector(worker))
    return metrics.registry
