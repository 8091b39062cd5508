"""Blocking receives and the connection pool of the Redis layer, measured against real servers.

Latency across processes, what an idle receiver costs the server, a burst of
threads on a small pool, a socket timeout shorter than the blocking time, and
blocking reads spread over two servers.
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest
import redis

from channels_core.layers import RedisChannelLayer
from tests.support.waiting import wait_for

LOGGER = "channels_core.layers.redis"


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}:"


def _commandstats(client: redis.Redis) -> dict[str, int]:
    calls = {}
    for name, stats in client.info("commandstats").items():
        calls[name.removeprefix("cmdstat_")] = int(stats["calls"])
    return calls


# -- latency across processes ------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    from channels_core.layers import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[sys.argv[1]], prefix=sys.argv[2], blocking_timeout=1)
    layer.send("lat.pong", {"ready": True})
    give_up = time.monotonic() + 60
    while time.monotonic() < give_up:
        _, message = layer.receive(["lat.ping"], block=True)
        received_ns = time.time_ns()
        if message is None:
            continue
        if message.get("stop"):
            break
        layer.send("lat.pong", {"i": message["i"], "received_ns": received_ns})
    layer.close()
    """
)


def test_cross_process_blocking_receive_latency(redis_url):
    prefix = _prefix()
    layer = RedisChannelLayer(hosts=[redis_url], prefix=prefix, blocking_timeout=2)
    child = subprocess.Popen([sys.executable, "-c", CHILD, redis_url, prefix], stderr=subprocess.PIPE)
    try:
        _, ready = _receive_within(layer, "lat.pong", 15, child)
        assert ready == {"ready": True}
        one_way_ms = []
        for i in range(200):
            time.sleep(0.002)  # let the child get back into its blocking read
            sent_ns = time.time_ns()
            layer.send("lat.ping", {"i": i})
            _, pong = _receive_within(layer, "lat.pong", 5, child)
            assert pong["i"] == i
            one_way_ms.append((pong["received_ns"] - sent_ns) / 1e6)
        layer.send("lat.ping", {"stop": True})
        assert child.wait(10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()
        layer.flush()
        layer.close()
    one_way_ms.sort()
    median = statistics.median(one_way_ms)
    summary = f"one-way ms: median {median:.2f}, p90 {one_way_ms[179]:.2f}, max {one_way_ms[-1]:.2f}"
    print(summary)
    assert median < 5, summary


def _receive_within(layer, channel, timeout, child):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = layer.receive([channel], block=True)
        if got[0] is not None:
            return got
        if child.poll() is not None:
            pytest.fail(f"child exited with {child.returncode}: {child.stderr.read().decode(errors='replace')}")
    pytest.fail(f"nothing on {channel!r} within {timeout}s")


# -- what an idle receiver costs ---------------------------------------------------

# Sent once per new connection by redis-py or once per layer (server version and clock).
HANDSHAKE = {
    "client|setinfo",
    "client|setname",
    "client|maint_notifications",
    "hello",
    "select",
    "auth",
    "time",
    "info",
}


@pytest.mark.slow
def test_idle_blocking_receiver_only_issues_blpop(private_redis):
    blocking_timeout = 2
    duration = 10
    stats = private_redis.client()
    stats.ping()  # connect (and its own handshake) before the counters are reset
    layer = RedisChannelLayer(hosts=[private_redis.url], prefix=_prefix(), blocking_timeout=blocking_timeout)
    receives = []
    errors = []

    def idle():
        end = time.monotonic() + duration
        try:
            while time.monotonic() < end:
                receives.append(layer.receive(["idle.ch", "other!"], block=True))
        except BaseException as exc:
            errors.append(exc)

    try:
        stats.config_resetstat()
        thread = threading.Thread(target=idle)
        thread.start()
        thread.join(duration + blocking_timeout + 5)
        assert not thread.is_alive()
        calls = _commandstats(stats)
        connections = int(stats.info("stats")["total_connections_received"])
    finally:
        layer.close()
        stats.close()
    assert not errors, errors
    assert set(receives) == {(None, None)}
    calls.pop("config|resetstat", None)  # ours
    report = f"commandstats after {len(receives)} idle receives: {calls}; connections made: {connections}"
    print(report)
    blpop = calls.pop("blpop", 0)
    assert 1 <= blpop <= duration / blocking_timeout + 2, report
    assert blpop <= len(receives) + 1, report
    assert set(calls) <= HANDSHAKE, report
    assert sum(calls.values()) <= 6, report
    assert connections == 1, report


# -- the pool under a burst --------------------------------------------------------


def test_burst_of_threads_on_a_small_pool(private_redis):
    threads_count = 300
    max_connections = 8
    layer = RedisChannelLayer(
        hosts=[private_redis.url],
        prefix=_prefix(),
        max_connections=max_connections,
        connection_kwargs={"client_name": "burst"},
    )
    barrier = threading.Barrier(threads_count)
    errors = []

    def work(i):
        try:
            barrier.wait(30)
            layer.group_add("burst", f"burst.member{i}")
            layer.send(f"burst.ch{i % 10}", {"i": i})
        except BaseException as exc:
            errors.append((i, exc))

    client = private_redis.client()
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(t.is_alive() for t in threads)
        assert not errors, f"{len(errors)} threads failed, first: {errors[0]!r}"
        opened = [c for c in client.client_list() if c["name"] == "burst"]
        assert len(opened) <= max_connections, f"{len(opened)} connections for max_connections={max_connections}"

        assert sorted(layer.group_channels("burst")) == sorted(f"burst.member{i}" for i in range(threads_count))
        for k in range(10):
            got = []
            while True:
                channel, message = layer.receive([f"burst.ch{k}"])
                if channel is None:
                    break
                got.append(message["i"])
            assert sorted(got) == list(range(k, threads_count, 10)), f"burst.ch{k}"
    finally:
        layer.flush()
        layer.close()
        client.close()


# -- socket_timeout shorter than the blocking time ---------------------------------


def test_blocking_receive_outlasts_a_short_socket_timeout(private_redis, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    layer = RedisChannelLayer(
        hosts=[private_redis.url], prefix=_prefix(), blocking_timeout=2, connection_kwargs={"socket_timeout": 0.5}
    )
    sender = RedisChannelLayer(hosts=[private_redis.url], prefix=layer.prefix)
    timer = threading.Timer(1.0, sender.send, ("short.timeout", {"late": True}))
    try:
        start = time.monotonic()
        assert layer.receive(["short.timeout"], block=True) == (None, None)
        elapsed = time.monotonic() - start
        assert 1.9 <= elapsed < 3.5, f"blocking receive returned after {elapsed:.2f}s (blocking_timeout=2)"

        timer.start()
        start = time.monotonic()
        assert layer.receive(["short.timeout"], block=True) == ("short.timeout", {"late": True})
        elapsed = time.monotonic() - start
        assert 0.9 <= elapsed < 1.5, f"message sent after 1s arrived after {elapsed:.2f}s"

        # The connection is still good for ordinary commands, which socket_timeout still bounds.
        layer.send("short.timeout", {"n": 1})
        assert layer.receive(["short.timeout"]) == ("short.timeout", {"n": 1})
    finally:
        timer.cancel()
        timer.join()
        sender.close()
        layer.close()
    problems = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert not problems, problems  # a socket timeout must not look like an outage


# -- blocking reads on two servers -------------------------------------------------


@pytest.mark.parametrize("spread", [False, True], ids=["one-channel", "channels-on-both-servers"])
def test_blocking_receive_across_two_shards(private_redis, second_private_redis, spread):
    servers = [private_redis, second_private_redis]
    layer = RedisChannelLayer(
        hosts=[s.url for s in servers], prefix=_prefix(), blocking_timeout=1, connection_kwargs={"client_name": "ms"}
    )
    if spread:
        # Plus a normal channel the hash ring puts on the other server, so the receive waits
        # on both servers whether normal channels are spread round-robin or hashed.
        home = layer.ring.get("ms.normal")
        other = next(f"ms.other{i}" for i in range(1000) if layer.ring.get(f"ms.other{i}") != home)
        channels = ["ms.normal", other]
    else:
        channels = ["ms.normal"]
    clients = [s.client() for s in servers]
    for client in clients:
        client.config_resetstat()
    received: dict[int, float] = {}
    errors = []
    stop = threading.Event()

    def receiver():
        try:
            while not stop.is_set():
                channel, message = layer.receive(channels, block=True)
                if message is not None:
                    assert channel == channels[message["n"] % len(channels)]
                    received[message["n"]] = time.monotonic()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=receiver)
    thread.start()
    latencies = []
    try:
        for n in range(20):
            time.sleep(0.03)  # the receiver is back in its blocking read
            sent = time.monotonic()
            layer.send(channels[n % len(channels)], {"n": n})
            assert wait_for(lambda n=n: n in received, 2.0), f"message {n} not received within 2s"
            latencies.append(received[n] - sent)
        assert sorted(received) == list(range(20))
        assert not errors, errors
        sends = [_commandstats(c).get("evalsha", 0) for c in clients]
        assert sum(sends) >= 20, f"sends per server: {sends}"
        if spread:
            assert all(sends), f"sends per server: {sends}"  # both servers were written to
    finally:
        stop.set()
        layer.close()
        thread.join(5)
    assert not thread.is_alive()
    assert not errors, errors
    worst = max(latencies)
    assert worst < 0.1, f"latencies (ms): {[round(x * 1000, 1) for x in latencies]}"

    try:
        for server, client in zip(servers, clients, strict=False):
            left = [c for c in client.client_list() if c["name"] == "ms" or "b" in c["flags"]]
            assert not left, f"{server.url} still has layer connections after close(): {left}"
    finally:
        for client in clients:
            client.close()
