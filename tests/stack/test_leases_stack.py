"""Leases through the whole stack: interface servers, a real `runworker` (its sweeper) and Redis.

Consumers: tests/stack/lease_consumers.py (connect joins "lease-room", disconnect leaves it and
counts its run per reply channel in Redis; all three under enforce_ordering). Each test prints
what it measured.
"""

from __future__ import annotations

import time

import pytest
import redis

from channels_core.layers import RedisChannelLayer
from tests.interface_server.harness import ServerProcess, http_request
from tests.interface_server.ws_support import RawWebSocket, close_code, wait_closed, ws_connect
from tests.support.waiting import wait_for

from .harness import Stack
from .lease_consumers import ROOM

ROUTING = {"TEST_CHANNEL_ROUTING": "tests.stack.lease_consumers.channel_routing"}
LEASE_TTL = 3.0


def _layer(stack: Stack) -> RedisChannelLayer:
    return RedisChannelLayer(hosts=[stack.env["TEST_REDIS_URL"]], prefix=stack.env["TEST_LAYER_PREFIX"])


def _open_raw(port: int, count: int, batch: int = 50) -> list[RawWebSocket]:
    """`count` accepted WebSockets on /leases/, handshakes sent `batch` at a time."""
    sockets: list[RawWebSocket] = []
    while len(sockets) < count:
        group = [RawWebSocket(port, "/leases/", timeout=20) for _ in range(min(batch, count - len(sockets)))]
        for ws in group:
            ws.expect_upgrade()
        sockets += group
    return sockets


def _runs(client: redis.Redis, stack: Stack) -> dict[str, int]:
    raw = client.hgetall(stack.env["TEST_LAYER_PREFIX"] + "test:disconnects")
    return {k.decode(): int(v) for k, v in raw.items()}


@pytest.mark.slow
def test_sigkill_of_a_server_with_500_sockets_every_disconnect_runs_once(redis_url, key_prefix, tmp_path):
    stack = Stack(redis_url, key_prefix, tmp_path, extra_env=ROUTING)
    layer = _layer(stack)
    client = redis.Redis.from_url(redis_url)
    survivor = None
    try:
        doomed = stack.start_server("--lease-ttl", str(LEASE_TTL))
        survivor = ServerProcess("tests.project.asgi:channel_layer", ["--lease-ttl", str(LEASE_TTL)], env=stack.env)
        survivor.start()
        stack.start_worker("--threads", "4")
        stack.start_worker("--threads", "2")  # two sweepers: one is elected
        doomed_prefix, survivor_prefix = doomed.reply_prefix(), survivor.reply_prefix()

        victims = _open_raw(doomed.port, 500)
        alive = [ws_connect(survivor.ws_url + "/leases/") for _ in range(20)]
        assert wait_for(lambda: len(layer.group_channels(ROOM)) == 520, 30), len(layer.group_channels(ROOM))
        assert {doomed_prefix, survivor_prefix} <= set(layer.lease_holders())

        doomed.process.kill()
        killed = time.monotonic()
        members = {m for m in layer.group_channels(ROOM) if m.startswith(doomed_prefix)}
        assert len(members) == 500

        def all_ran() -> bool:
            runs = _runs(client, stack)
            return sum(1 for name in members if name in runs) == 500

        assert wait_for(all_ran, LEASE_TTL + 5 + 10, interval=0.05), len(_runs(client, stack))
        elapsed = time.monotonic() - killed
        time.sleep(1.0)  # any duplicate would arrive now
        runs = _runs(client, stack)
        print(
            f"\nSIGKILL of a server holding 500 sockets (lease {LEASE_TTL:g} s): every disconnect consumer ran "
            f"{elapsed:.2f} s after the kill (bound: lease + 5 s = {LEASE_TTL + 5:g} s)"
        )
        assert elapsed <= LEASE_TTL + 5, elapsed
        assert {name: runs[name] for name in members} == dict.fromkeys(members, 1)
        remaining = layer.group_channels(ROOM)
        assert len(remaining) == 20 and all(m.startswith(survivor_prefix) for m in remaining), remaining
        sweeps = [stack.worker_output(i).count("Swept 1 expired lease") for i in range(2)]
        assert sorted(sweeps) == [0, 1], [stack.worker_output(i) for i in range(2)]
        # The live server's sockets were left alone and still work.
        for ws in alive:
            ws.send("still here")
            assert ws.recv(timeout=5) == "still here"
        for ws in alive:
            ws.close()
        for ws in victims:
            ws.close()
    finally:
        if survivor is not None:
            survivor.stop()
        stack.stop()
        layer.flush()
        layer.close()
        client.close()


@pytest.mark.slow
def test_redis_restart_without_persistence_closes_sockets_with_1012_and_clients_rejoin(private_redis, tmp_path):
    stack = Stack(private_redis.url, "leaserestart:", tmp_path, extra_env=ROUTING)
    layer = _layer(stack)
    try:
        server = stack.start_server("--lease-ttl", str(LEASE_TTL))
        stack.start_worker()
        clients = [ws_connect(server.ws_url + "/leases/") for _ in range(5)]
        assert wait_for(lambda: len(layer.group_channels(ROOM)) == 5, 10)
        layer.send_group(ROOM, {"text": "before"})
        assert [ws.recv(timeout=5) for ws in clients] == ["before"] * 5

        private_redis.restart()  # no persistence: groups, leases and ordering state are gone
        restarted = time.monotonic()
        codes = []
        for ws in clients:
            _, closed = wait_closed(ws, LEASE_TTL + 10)
            codes.append(close_code(closed))
        detected = time.monotonic() - restarted
        print(f"\nRedis restarted without persistence: all 5 sockets closed with 1012 {detected:.2f} s later")
        assert codes == [1012] * 5
        assert detected <= LEASE_TTL / 3 + 5, detected  # one renewal, plus reconnecting to Redis
        output = server.output()
        assert output.count("lost its state") == 1, output

        # The WebSocketBridge reconnects: the connect consumers rejoin the group, broadcasts arrive again.
        again = [ws_connect(server.ws_url + "/leases/") for _ in range(5)]
        assert wait_for(lambda: len(layer.group_channels(ROOM)) == 5, 15), layer.group_channels(ROOM)
        layer.send_group(ROOM, {"text": "after"})
        assert [ws.recv(timeout=5) for ws in again] == ["after"] * 5
        for ws in again:
            ws.close()
        time.sleep(0.5)
        assert server.output().count("lost its state") == 1
    finally:
        stack.stop()
        layer.close()


@pytest.mark.slow
def test_http_gets_503_promptly_once_no_worker_lease_listens_on_http_request(redis_url, key_prefix, tmp_path):
    stack = Stack(redis_url, key_prefix, tmp_path, extra_env=ROUTING)
    try:
        server = stack.start_server("--lease-ttl", str(LEASE_TTL))
        worker = stack.start_worker("--lease-ttl", "2")
        assert wait_for(lambda: _get(server.port).status == 200, 10)
        time.sleep(1.5)  # the server has seen the worker's lease
        worker.kill()
        killed = time.monotonic()
        reply = None
        while time.monotonic() - killed < 15:
            started = time.monotonic()
            try:
                reply = _get(server.port, timeout=1)
            except OSError:  # queued for a worker that is gone: the client gives up
                continue
            if reply.status == 503:
                answered_in = time.monotonic() - started
                break
        detected = time.monotonic() - killed
        print(
            f"\nLast worker SIGKILLed (lease 2 s): HTTP answered 503 from {detected:.2f} s after, "
            f"each in {answered_in:.3f} s"
        )
        assert reply is not None and reply.status == 503 and b"No worker" in reply.body, reply
        assert detected <= 2 + 4 + 2, detected  # worker lease + MISSING_CHECKS checks + slack
        assert answered_in < 0.5
        assert server.output().count("No worker listens on http.request") == 1
        stack.start_worker("--lease-ttl", "2")
        assert wait_for(lambda: _get(server.port).status == 200, 10)
        assert "A worker listens on http.request again" in server.output()
    finally:
        stack.stop()


def _get(port: int, timeout: float = 5.0):
    return http_request(port, "GET", "/", timeout=timeout)


@pytest.mark.slow
def test_the_bridge_in_a_browser_rejoins_its_group_after_redis_lost_its_state(private_redis, tmp_path):
    from tests.support.browser import Browser

    stack = Stack(private_redis.url, "leasebridge:", tmp_path, extra_env={**ROUTING, "TEST_DEBUG": "1"})
    layer = _layer(stack)
    try:
        server = stack.start_server("--lease-ttl", str(LEASE_TTL))
        stack.start_worker()
        with Browser() as browser:
            page = browser.page()
            page.goto(stack.url + "/bridge/")
            page.wait_for("window.WebSocketBridgeClass !== undefined")
            page.evaluate("window.start('/leases/', {minReconnectionDelay: 200, maxReconnectionDelay: 500})")
            page.wait_for("window.bridge.socket.readyState === 1")
            assert wait_for(lambda: len(layer.group_channels(ROOM)) == 1, 10)
            layer.send_group(ROOM, {"text": '{"b": 1}'})
            page.wait_for("window.received.some(r => r.default && r.default.b === 1)")

            private_redis.restart()  # no persistence: the group is gone
            page.wait_for("window.bridge.socket.retries >= 1", timeout=LEASE_TTL + 10)  # closed (1012), reconnecting
            page.wait_for("window.bridge.socket.readyState === 1", timeout=20)
            assert wait_for(lambda: len(layer.group_channels(ROOM)) == 1, 15)  # the connect consumer rejoined
            layer.send_group(ROOM, {"text": '{"b": 2}'})
            page.wait_for("window.received.some(r => r.default && r.default.b === 2)")
        assert "closing 1 WebSockets with 1012" in server.output(), server.output()
    finally:
        stack.stop()
        layer.close()
