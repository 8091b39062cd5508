"""Prometheus metrics of a worker process (`runworker --metrics-port`), all named `channels_worker_*`.

`WorkerMetrics` owns the metric objects; `Worker` calls its few methods from
its loop (`received`, `consumed`, `failed`, `invalid`, `dropped`), only when a
`WorkerMetrics` was given, so a worker without `--metrics-port` pays nothing.

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
        # Labelled children cached per channel: `.labels()` costs a lock and a tuple per call.
        self._per_channel: dict[str, tuple[Any, Any]] = {}
        self._waits: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._store_seen: int | None = None

    # -- called by Worker ---------------------------------------------------------------

    def received(self, batch: list[tuple[str, Any]], waits: list[float]) -> None:
        """Record the queue wait of each message of a batch (`waits` from `last_queue_waits()`, in order)."""
        for (channel, _), wait in zip(batch, waits, strict=False):
            histogram = self._waits.get(channel)
            if histogram is None:
                histogram = self._waits[channel] = self.queue_wait.labels(channel_label(channel))
            histogram.observe(max(0.0, wait))

    def consumed(self, channel: str, seconds: float) -> None:
        """A consumer ran on `channel` for `seconds` (raised or not)."""
        pair = self._per_channel.get(channel)
        if pair is None:
            label = channel_label(channel)
            pair = self._per_channel[channel] = (self.consumer_seconds.labels(label), self.messages.labels(label))
        pair[0].observe(seconds)
        pair[1].inc()

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
        number it dropped, when it returns one. Otherwise the drops are read
        from the store's process-wide `dropped` total (the increase since the
        last look, under a lock, so each drop is counted once; with several
        threads flushing at the same moment a drop may be put on the other
        thread's channel).
        """
        if isinstance(flushed, int) and not isinstance(flushed, bool):
            self.dropped(channel, "consumer", flushed)
            return
        total = getattr(store, "dropped", 0)
        with self._lock:
            seen = self._store_seen if self._store_seen is not None else 0
            self._store_seen = total
        self.dropped(channel, "consumer", total - seen)

    def start_counting_store(self, store: Any) -> None:
        """Ignore the drops `store` counted before this worker started (another worker in this process)."""
        with self._lock:
            if self._store_seen is None:
                self._store_seen = getattr(store, "dropped", 0)


def exposition(registry: CollectorRegistry) -> tuple[str, bytes]:
    """`(content type, body)` of `/metrics` for `registry`, in the Prometheus text format."""
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

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
