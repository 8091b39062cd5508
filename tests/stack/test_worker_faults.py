"""Worker fault injection through real processes: SIGTERM of a busy runworker, a slow consumer next
to fast traffic, garbage on every channel, SIGKILL under HTTP load.

Consumers: tests/stack/fault_consumers.py (routed with TEST_CHANNEL_ROUTING). Each test prints
its figures (run with `-s` to see them).
"""

from __future__ import annotations

import collections
import random
import signal
import statistics
import threading
import time
import urllib.error
import urllib.request

import msgpack
import pytest
import redis

from channels_core.layers import RedisChannelLayer
from tests.interface_server.ws_support import ws_connect

from .harness import Stack
from .slow_consumer import flood_and_measure

ROUTING = {"TEST_CHANNEL_ROUTING": "tests.stack.fault_consumers.channel_routing"}


@pytest.fixture
def fault_stack(redis_url, key_prefix, tmp_path):
    stack = Stack(redis_url, key_prefix, tmp_path, extra_env=ROUTING)
    yield stack
    stack.stop()
    store = redis.Redis.from_url(redis_url)
    keys = list(store.scan_iter(match=key_prefix + "*", count=1000))
    if keys:
        store.delete(*keys)


def sender_layer(redis_url: str, prefix: str, **options) -> RedisChannelLayer:
    """The test's own layer on the stack's prefix (a roomy capacity and expiry for floods)."""
    options.setdefault("capacity", 100_000)
    options.setdefault("expiry", 300)
    return RedisChannelLayer(hosts=[redis_url], prefix=prefix, **options)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- SIGTERM of a busy worker ------------------------------------------------------------------


SIGTERM_MESSAGES = 60_000
SIGTERM_ROUNDS = 10


@pytest.mark.slow
def test_sigterm_of_a_busy_worker_loses_no_message_it_took(fault_stack, redis_url, key_prefix):
    """10 SIGTERMs of a runworker busy on a stream (single thread, default threads, a 2-process pool):
    every message taken out of Redis is handled; the rest is still queued."""
    layer = sender_layer(redis_url, key_prefix)
    ids = list(range(SIGTERM_MESSAGES))
    for start in range(0, len(ids), 1000):
        layer.send_many("fault.record", [{"id": i} for i in ids[start : start + 1000]])
    modes = [["--threads", "1"], [], ["--processes", "2", "--threads", "1"]]
    rng = random.Random(13)
    stop_times = []
    for round_ in range(SIGTERM_ROUNDS):
        worker = fault_stack.start_worker(*modes[round_ % len(modes)])
        time.sleep(rng.uniform(0.2, 0.5))  # busy: the queue never runs dry
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0, worker.output()
        stop_times.append(time.monotonic() - started)
        assert "Traceback" not in worker.output(), worker.output()
    remaining = set()
    while batch := layer.receive_batch(["fault.record"], 1000, block=False):
        remaining.update(m["id"] for _, m in batch)
    store = redis.Redis.from_url(redis_url)
    handled = {int(x) for x in store.smembers(key_prefix + "handled")}
    lost = set(ids) - handled - remaining
    print(
        f"\nSIGTERM x{SIGTERM_ROUNDS}: {len(handled)} handled, {len(remaining)} still queued, {len(lost)} lost; "
        f"stop took p50 {statistics.median(stop_times):.2f}s, max {max(stop_times):.2f}s"
    )
    assert remaining, "the queue ran dry: the workers were not busy when they were stopped"
    assert not handled & remaining
    assert lost == set(), f"{len(lost)} messages taken and never handled: {sorted(lost)[:20]}"

    # Idle (the queue is empty now): SIGTERM still ends the process promptly.
    idle_stops = []
    for args in (["--threads", "1"], []):
        idle = fault_stack.start_worker(*args)
        time.sleep(0.5)
        started = time.monotonic()
        idle.send_signal(signal.SIGTERM)
        assert idle.wait(10) == 0
        idle_stops.append(time.monotonic() - started)
    print(f"idle runworker (1 thread, default threads) stopped in {', '.join(f'{t:.2f}s' for t in idle_stops)}")
    assert max(idle_stops) < 2.0  # WAKE_INTERVAL (0.5 s) plus a busy machine's slack


# -- a slow consumer next to fast traffic --------------------------------------------------------


@pytest.mark.slow
def test_the_slow_jobs_recipe_keeps_echo_latency_low_under_a_flood_of_5s_consumers(fault_stack):
    """The recommended set-up: the slow consumer's channel has its own workers; the others exclude it.

    12 five-second jobs are queued while a client measures echo round trips on websocket.receive.
    """
    fault_stack.start_server()
    fault_stack.start_worker("--exclude-channels", "slow-jobs")
    slow = fault_stack.start_worker("--only-channels", "slow-jobs")
    latency = flood_and_measure(fault_stack.ws_url, "/fault/slow/", flood_sockets=4, frames_each=3, seconds=5)
    slow.kill()  # not worth draining: its 5 s consumers would hold the teardown
    print(f"\nslow-jobs recipe, a flood of 12 x 5 s consumers: {latency}")
    assert latency.first_slow_reply is not None, "the slow-jobs workers never answered"
    assert latency.p99 < 1.0, latency  # generous: without the recipe it is tens of seconds


# -- garbage on every channel -----------------------------------------------------------------------


FAR = b"99999999999999"  # an element's deadline (ms), far in the future
TWO_MB = b"x" * (2 * 1024 * 1024)


def raw_elements(reply_channel: str) -> list[bytes]:
    """Elements no layer client writes: unframed, not msgpack, not a dict, 2 MB."""
    return [
        b"not a layer element",
        FAR + b"\n\xc1\xc1 not msgpack",
        FAR + b"\n" + msgpack.packb([1, 2, 3]),
        FAR + b"\n" + msgpack.packb({"reply_channel": reply_channel, "body": TWO_MB}),
    ]


def wrong_shapes(channel: str, reply_channel: str) -> list[dict]:
    """Messages a buggy interface server could send on `channel`: decodable, of the wrong shape."""
    base = {"reply_channel": reply_channel, "path": "/fault/echo/", "order": 1}
    if channel == "http.request":
        base = {"reply_channel": reply_channel, "method": "GET", "path": "/", "headers": []}
        return [{k: v for k, v in base.items() if k != "reply_channel"}, {**base, "path": 5}, {**base, "body": "str"}]
    if channel == "websocket.receive":
        return [{"path": "/fault/echo/", "text": "x"}, {**base, "text": b"bytes"}, {**base, "bytes": "str"}]
    if channel == "websocket.disconnect":
        return [{"path": "/fault/echo/", "code": 1000}, {**base, "code": "1000"}]
    return [{"path": "/fault/echo/"}, {**base, "headers": "not a list"}, {**base, "path": ["/"]}]


@pytest.mark.slow
def test_garbage_on_every_channel_is_dropped_logged_once_and_everyone_else_is_served(
    fault_stack, redis_url, key_prefix
):
    server = fault_stack.start_server()
    worker = fault_stack.start_worker()
    layer = sender_layer(redis_url, key_prefix)
    store = redis.Redis.from_url(redis_url)
    reply_prefix = server.reply_prefix()
    nobody = reply_prefix + "nobody"  # a reply channel of the server that no connection owns
    worker_channels = ["http.request", "websocket.connect", "websocket.receive", "websocket.disconnect"]
    with ws_connect(fault_stack.ws_url + "/fault/echo/") as ws:  # open throughout the garbage
        for _ in range(2):  # twice: the second time must not be logged again
            for channel in worker_channels:
                store.rpush(layer.keys.send_target(channel).keys[0], *raw_elements(nobody))
                for message in wrong_shapes(channel, nobody):
                    layer.send(channel, message)
            reply_key = layer.keys.send_target(nobody).keys[0]
            store.rpush(reply_key, *raw_elements(nobody))
            store.rpush(reply_key, FAR + b"\xff\xfe\n" + msgpack.packb({"text": "x"}))  # targets not ASCII
            layer.send(nobody, {"text": 5})  # wrong types, for a connection that does not exist
            keys = [layer.keys.send_target(c).keys[0] for c in worker_channels] + [reply_key]
            assert wait_for_empty(store, keys, 15), [store.llen(k) for k in keys]
        time.sleep(0.5)  # the last popped elements are decoded and logged
        ws.send("still served")
        assert ws.recv(timeout=10) == "still served"
    with urllib.request.urlopen(fault_stack.url + "/", timeout=10) as response:
        assert response.read() == b"OK"
    with ws_connect(fault_stack.ws_url + "/fault/echo/") as ws:
        ws.send("new socket")
        assert ws.recv(timeout=10) == "new socket"
    assert worker.poll() is None and server.process.poll() is None

    worker_log, server_log = worker.output(), server.output()
    print("\nworker:\n" + "\n".join(line for line in worker_log.splitlines() if "Dropped" in line))
    print("server:\n" + "\n".join(line for line in server_log.splitlines() if "Dropped" in line))
    for channel in worker_channels:
        assert worker_log.count(f"Dropped an unreadable element on channel '{channel}'") == 1, worker_log
        assert worker_log.count(f"Dropped an invalid message on channel '{channel}'") == 1, worker_log
    # One ERROR record (the server's output may show a record twice: its handler and a bare one).
    dropped = f"ERROR   channels_core.layers.redis: Dropped an unreadable element on channel '{reply_prefix}'"
    assert server_log.count(dropped) == 1, server_log
    assert "Traceback" not in worker_log, worker_log
    assert "Traceback" not in server_log, server_log


def wait_for_empty(store: redis.Redis, keys: list[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(store.llen(k) == 0 for k in keys):
            return True
        time.sleep(0.05)
    return False


# -- worker SIGKILL under HTTP load ------------------------------------------------------------------


HTTP_TIMEOUT = 3.0


class HttpLoad:
    """`clients` threads each doing GET / in a loop; records (start, status, seconds) of every request."""

    def __init__(self, url: str, clients: int = 8) -> None:
        self.url = url
        self.results: list[tuple[float, int | str, float]] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.results.append(get_status(self.url, HTTP_TIMEOUT + 10))

    def __enter__(self) -> HttpLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(HTTP_TIMEOUT + 15)

    def since(self, start: float) -> list[tuple[float, int | str, float]]:
        return [r for r in self.results if r[0] >= start]


def get_status(url: str, timeout: float) -> tuple[float, int | str, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            status: int | str = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:  # a hang past `timeout`, a reset
        status = type(exc).__name__
    return started, status, time.monotonic() - started


def summary(results: list[tuple[float, int | str, float]]) -> str:
    counts = collections.Counter(status for _, status, _ in results)
    slowest = max((seconds for _, _, seconds in results), default=0.0)
    return f"{len(results)} requests {dict(counts)}, slowest {slowest:.2f}s"


@pytest.mark.slow
def test_worker_sigkill_under_http_load(fault_stack):
    """Two workers under HTTP load, one SIGKILLed: answers come from the survivor (or 503/504), none
    hangs past --http-timeout. Then the survivor too: what clients get with no worker at all. Then a
    new worker: service resumes."""
    fault_stack.start_server("--http-timeout", str(HTTP_TIMEOUT))
    victim = fault_stack.start_worker()
    fault_stack.start_worker()
    url = fault_stack.url + "/"
    with HttpLoad(url) as load:
        time.sleep(1.5)
        killed_at = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        time.sleep(2.5)
        survivor_down_at = time.monotonic()
        fault_stack.workers[1].send_signal(signal.SIGKILL)
        time.sleep(HTTP_TIMEOUT + 2)
        restarted_at = time.monotonic()
        fault_stack.start_worker()
        time.sleep(1.5)

    def ended(since: float, until: float = float("inf")) -> list:
        return [r for r in load.results if since <= r[0] + r[2] < until]

    before = ended(0, killed_at)
    one_down = ended(killed_at, survivor_down_at)
    none_left = ended(survivor_down_at, restarted_at)
    back = [r for r in load.results if r[0] >= restarted_at + 0.5]
    print(f"\nbefore the SIGKILL: {summary(before)}")
    print(f"one of two workers SIGKILLed (answers until the second kill): {summary(one_down)}")
    print(f"no worker left (answers until a new one starts): {summary(none_left)}")
    print(f"a new worker started: {summary(back)}")
    assert before and all(status == 200 for _, status, _ in before), summary(before)
    # One worker down: the survivor answers; what the dead one had taken gets 503 after --http-timeout.
    assert sum(status == 200 for _, status, _ in one_down) > len(one_down) / 2, summary(one_down)
    # Never a hang: every answer within --http-timeout plus slack for a busy machine.
    for results in (one_down, none_left, back):
        assert {status for _, status, _ in results} <= {200, 503, 504}, summary(results)
        assert max(seconds for _, _, seconds in results) < HTTP_TIMEOUT + 2.5, summary(results)
    assert not any(status == 200 for started, status, _ in none_left if started > survivor_down_at + 0.5)
    assert back and all(status == 200 for _, status, _ in back), summary(back)
