"""Resource use: no memory growth over thousands of WebSockets, no CPU while idle."""

from __future__ import annotations

import time

import pytest

from channels_core.test.processes import cpu_seconds

from .ws_support import Worker, open_ws, ws_connect


def _open_and_close(server, count: int, worker: Worker) -> None:
    for i in range(count):
        with ws_connect(server.ws_url + f"/leak/{i % 10}") as ws:
            ws.send("hello")
            assert ws.recv(timeout=5) == "hello"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_no_memory_growth_over_2000_websockets(start_server, worker_layer):
    server = start_server(layer_options={"capacity": 5000})
    with Worker(worker_layer) as worker:
        _open_and_close(server, 200, worker)
        time.sleep(0.5)
        before = server.rss_kb()
        started = time.monotonic()
        _open_and_close(server, 2000, worker)
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 5
        while len(worker.disconnects) < 2200 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        after = server.rss_kb()
    assert len(worker.connects) == 2200
    assert len(worker.disconnects) == 2200  # one each, none lost
    assert (after - before) < 20 * 1024, f"RSS grew by {(after - before) / 1024:.1f} MB ({before} -> {after} kB)"
    assert elapsed < 60, elapsed
    print(f"2000 WebSockets in {elapsed:.1f}s; RSS {before} -> {after} kB")


@pytest.mark.alone
@pytest.mark.slow
def test_idle_server_uses_no_cpu(start_server, worker_layer):
    """No polling: an idle server with an idle open WebSocket burns (almost) no CPU."""
    server = start_server()
    ws, _ = open_ws(server, worker_layer)  # default 20 s ping interval: no pings in the window
    with ws:
        time.sleep(1)
        before = cpu_seconds(server.process.pid)
        time.sleep(6)
        used = cpu_seconds(server.process.pid) - before
        assert used < 0.1, f"the idle server used {used:.3f}s of CPU in 6s"
        ws.send("still works")
        assert worker_layer.receive(["websocket.receive"], block=True)[1]["text"] == "still works"


@pytest.mark.slow
def test_idle_server_sends_redis_nothing_but_its_blocking_read(start_server, private_redis):
    """An idle server re-issues one blocking read every blocking_timeout (5 s) and renews its lease.

    Every --lease-ttl / 3 = 5 s it renews its lease and looks at the workers' leases (two script
    calls; the commands those scripts run are counted by Redis too): no polling.
    """
    start_server(env={"TEST_REDIS_URL": private_redis.url})
    client = private_redis.client()
    time.sleep(1)
    client.config_resetstat()
    time.sleep(11)
    calls = {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}
    calls.pop("config|resetstat", None)
    calls.pop("info", None)
    reads = calls.pop("blmpop", 0) + calls.pop("blpop", 0)
    scripts = calls.pop("evalsha", 0)
    assert 1 <= reads <= 4, reads
    assert 2 <= scripts <= 6, scripts
    assert sum(calls.values()) <= 8 * scripts, calls  # what the scripts ran, a few commands each
