"""A worker's per-message cost with metrics off, on, and on in a pool's file-backed (multiprocess) mode.

    python benchmarks/worker_metrics_bench.py [--redis-url URL] [--messages 4000] [--rounds 5] [--quick]

One `Worker` (one thread, prefetch 1, the real loop: receive, validate, route,
run, flush) drains `--messages` messages queued in advance on a channel whose
consumer does nothing, so the figure is the worker's own cost per message, the
most the metrics can add in proportion. Two layers: the in-memory layer (no
network: the worker's code alone, the harshest ratio) and the Redis layer
(a real round trip per message, what `runworker` pays). The modes run
interleaved, `--rounds` times each; the best (lowest) run per mode is
reported with its ratio to "off" (noise from other processes only ever adds
time), and the spread of the runs.

Modes: `off` (no `--metrics-port`), `on` (a single process: values in memory),
`multiprocess` (a pool child: values in files of PROMETHEUS_MULTIPROC_DIR).

Then the metric calls alone, as the worker makes them for one message
(consumer time and count, drop check, queue wait into the thread's tally),
timed in a tight loop (best of 5, CPU time), then one flush of the 100,000 they counted
into the Prometheus metrics: the cost the metrics add per message, without
the noise of the loop around them. On a shared machine the drain figures move by tens of
percent between rounds (the spread is printed); that last figure does not.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# The worker runs Django's consumer_finished receivers (close_old_connections) after each message, as
# under runworker: the test project's settings give them a database to look at.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
import django  # noqa: E402

django.setup()
import logging  # noqa: E402
import timeit  # noqa: E402

from benchmarks.common import benchmark_parser  # noqa: E402
from channels_core.asgi import ChannelLayerWrapper  # noqa: E402
from channels_core.consumer_sends import pending_message_store  # noqa: E402
from channels_core.layers import InMemoryChannelLayer, RedisChannelLayer  # noqa: E402
from routing import route  # noqa: E402
from worker import Worker  # noqa: E402
from worker.metrics import MULTIPROC_ENV, WorkerMetrics  # noqa: E402

CHANNEL = "bench.metrics"


def nothing(message, **kwargs) -> None:
    pass


def drain(layer: ChannelLayerWrapper, metrics: WorkerMetrics | None, messages: int) -> tuple[float, float]:
    """Queue `messages`, run a worker until it handled them all; (wall, CPU) seconds per message.

    CPU is this process's (the worker thread's, plus the idle wait of this one):
    what the worker costs, steadier than wall time on a shared machine.
    """
    for start in range(0, messages, 500):
        layer.send_many(CHANNEL, [{"n": i} for i in range(start, min(messages, start + 500))])
    worker = Worker(layer, signal_handlers=False, metrics=metrics)
    thread = threading.Thread(target=worker.run, daemon=True)
    began, cpu = time.perf_counter(), time.process_time()
    thread.start()
    while worker.handled < messages:
        time.sleep(0.005)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    worker.termed = True
    thread.join(10)
    return elapsed / messages, cpu / messages


def metric_calls(metrics: WorkerMetrics) -> float:
    """Seconds the worker's metric calls take for one message (best of 5 loops of 20,000)."""
    batch = [(CHANNEL, {})]
    tally = metrics.tally()

    def one_message() -> None:
        started = time.perf_counter()
        tally.received(batch, [0.004])
        metrics.consumer_sends_dropped(CHANNEL, None, pending_message_store)
        tally.consumed(CHANNEL, time.perf_counter() - started)

    return min(timeit.repeat(one_message, number=20_000, repeat=5, timer=time.process_time)) / 20_000


def main() -> None:
    parser = benchmark_parser(__doc__, "1,000 messages, 3 rounds")
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    logging.getLogger("worker").setLevel(logging.WARNING)  # one "Listening" line per run otherwise
    messages, rounds = (1000, 3) if args.quick else (args.messages, args.rounds)
    prefix = f"bench-metrics-{uuid.uuid4().hex[:8]}:"
    layers = {
        "in-memory": ChannelLayerWrapper(
            InMemoryChannelLayer(capacity=messages + 10, blocking_timeout=0.05), "bench", [route(CHANNEL, nothing)]
        ),
        "redis": ChannelLayerWrapper(
            RedisChannelLayer(hosts=[args.redis_url], prefix=prefix, capacity=messages + 10, blocking_timeout=1),
            "bench",
            [route(CHANNEL, nothing)],
        ),
    }
    directory = tempfile.mkdtemp(prefix="bench-metrics-")
    try:
        # Made before the variable is set: in-memory values. The file-backed ones after it.
        single = WorkerMetrics()
        os.environ[MULTIPROC_ENV] = directory
        multi = WorkerMetrics()
        modes = {"off": None, "on": single, "multiprocess": multi}
        print(f"{messages} messages per run, {rounds} rounds, modes interleaved; best run per message, wall and CPU")
        for name, layer in layers.items():
            drain(layer, None, min(messages, 500))  # warm-up (connections, scripts, code paths)
            runs: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
            for _ in range(rounds):
                for mode, metrics in modes.items():
                    runs[mode].append(drain(layer, metrics, messages))
            for which, kind in ((0, "wall"), (1, "cpu ")):
                base = min(run[which] for run in runs["off"])
                line = [f"{name:10} {kind}"]
                for mode in modes:
                    values = [run[which] for run in runs[mode]]
                    best = min(values)
                    spread = (max(values) - best) / best * 100
                    line.append(f"{mode} {best * 1e6:6.1f} us (spread {spread:3.0f}%, x{best / base:.3f})")
                print("  ".join(line))
        for mode in ("on", "multiprocess"):
            print(f"metric calls per message ({mode}): {metric_calls(modes[mode]) * 1e6:.2f} us CPU")
            started = time.process_time()
            modes[mode].flush()
            print(f"  a flush after 100,000 messages ({mode}): {(time.process_time() - started) * 1e3:.2f} ms CPU")
        # The metrics really counted (a benchmark of a no-op would prove nothing).
        for mode in ("on", "multiprocess"):
            handled = modes[mode].registry.get_sample_value("channels_worker_messages_total", {"channel": CHANNEL})
            print(f"check: {mode} counted {handled:.0f} messages")
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)
        layers["redis"].flush()
        layers["redis"].close()


if __name__ == "__main__":
    main()
