"""The interface server's lease (interface_server/lease_keeper.py), against a real server process and Redis.

The test plays the worker (and the sweeper) on the layer; a whole stack
with `runworker` is in tests/stack/test_leases_stack.py.
"""

from __future__ import annotations

import signal
import time

import redis

from channels_core.layers import RedisChannelLayer
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_for

from .ws_support import (
    RawWebSocket,
    Worker,
    close_code,
    connect_in_background,
    drain,
    open_ws,
    wait_closed,
    ws_connect,
)

TTL = 1.5


def _tracked(redis_url: str, key_prefix: str, holder: str) -> dict:
    client = redis.Redis.from_url(redis_url)
    try:
        return client.hgetall(f"{key_prefix}lease:conn:{holder}")
    finally:
        client.close()


def test_server_holds_a_lease_tracks_sockets_and_releases_each_disconnect_once(
    start_server, worker_layer, redis_url, key_prefix
):
    server = start_server("--lease-ttl", str(TTL))
    holder = server.reply_prefix()
    assert wait_for(lambda: holder in worker_layer.lease_holders(), 5), worker_layer.lease_holders()
    info = worker_layer.lease_holders()[holder]
    assert info["kind"] == "interface-server" and info["pid"] == server.process.pid
    ws, connect = open_ws(server, worker_layer, "/chat")
    assert wait_for(lambda: connect["reply_channel"].encode() in _tracked(redis_url, key_prefix, holder), 5)
    ws.close()
    time.sleep(0.5)
    disconnects = [
        m for m in drain(worker_layer, "websocket.disconnect") if m["reply_channel"] == connect["reply_channel"]
    ]
    assert len(disconnects) == 1 and disconnects[0]["code"] == 1000, disconnects
    assert _tracked(redis_url, key_prefix, holder) == {}
    # Nothing left for a sweeper: even once the lease expires, no second disconnect.
    server.process.kill()
    time.sleep(TTL + 0.2)
    assert worker_layer.lease_sweep("test-sweeper", 5) == [holder]
    assert drain(worker_layer, "websocket.disconnect") == []


def test_sigterm_ends_the_lease_after_the_disconnects(start_server, worker_layer, redis_url, key_prefix):
    server = start_server("--lease-ttl", str(TTL))
    holder = server.reply_prefix()
    clients = [open_ws(server, worker_layer) for _ in range(3)]
    assert wait_for(lambda: len(_tracked(redis_url, key_prefix, holder)) == 3, 5)
    assert server.terminate() == 0
    assert holder not in worker_layer.lease_holders()
    assert _tracked(redis_url, key_prefix, holder) == {}
    got = drain(worker_layer, "websocket.disconnect")
    assert sorted(m["reply_channel"] for m in got) == sorted(c["reply_channel"] for _, c in clients)
    assert {m["code"] for m in got} == {1001}
    time.sleep(TTL + 0.2)
    assert worker_layer.lease_sweep("test-sweeper", 5) == []  # ended, not expired


def test_sigkill_leaves_the_disconnects_to_the_sweeper(start_server, worker_layer, redis_url, key_prefix):
    server = start_server("--lease-ttl", str(TTL))
    holder = server.reply_prefix()
    clients = [open_ws(server, worker_layer) for _ in range(5)]
    assert wait_for(lambda: len(_tracked(redis_url, key_prefix, holder)) == 5, 5)
    clients[0][0].close()
    assert wait_for(lambda: len(_tracked(redis_url, key_prefix, holder)) == 4, 5)
    server.process.kill()
    killed = time.monotonic()
    swept = []
    while not swept and time.monotonic() - killed < TTL + 5:
        swept = worker_layer.lease_sweep("test-sweeper", 5)
        time.sleep(0.1)
    assert swept == [holder]
    assert worker_layer.last_sweep == {holder: 4}
    got = drain(worker_layer, "websocket.disconnect")
    by_channel = {}
    for message in got:
        by_channel.setdefault(message["reply_channel"], []).append(message["code"])
    assert by_channel.pop(clients[0][1]["reply_channel"]) == [1000]
    assert by_channel == {c["reply_channel"]: [1006] for _, c in clients[1:]}
    assert worker_layer.lease_sweep("test-sweeper", 5) == []


def test_flushed_layer_closes_every_websocket_with_1012_once(start_server, worker_layer):
    server = start_server("--lease-ttl", str(TTL))
    holder = server.reply_prefix()
    assert wait_for(lambda: holder in worker_layer.lease_holders(), 5)
    with Worker(worker_layer, echo=True) as worker:  # accepts every connect
        clients = [ws_connect(server.ws_url + "/") for _ in range(3)]
        worker_layer.flush()  # what a Redis restart without persistence leaves
        fresh = ws_connect(server.ws_url + "/")  # its connect ran after the flush: it is in its groups
        codes = []
        for ws in clients:
            _, closed = wait_closed(ws, TTL + 3)
            codes.append(close_code(closed))
        assert codes == [1012] * 3
        # Each still gets one disconnect: sent plainly (the tracking went with the flush).
        assert wait_for(lambda: len(worker.disconnects) == 3, 5), worker.disconnects
        time.sleep(0.3)
        assert len(worker.disconnects) == 3
        fresh.send("still open")
        assert fresh.recv(timeout=5) == "still open"
        fresh.close()
    output = server.output()
    assert output.count("lost its state") == 1, output
    # A new client is served as usual.
    with Worker(worker_layer, echo=True):
        ws = ws_connect(server.ws_url + "/")
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.close()


def test_a_frozen_server_swept_meanwhile_closes_its_sockets_with_1012_and_sends_no_second_disconnect(
    start_server, worker_layer
):
    server = start_server("--lease-ttl", str(TTL))
    holder = server.reply_prefix()
    with Worker(worker_layer, echo=True) as worker:
        clients = [ws_connect(server.ws_url + "/") for _ in range(3)]
        assert wait_for(lambda: len(worker.connects) == 3, 5)
        time.sleep(0.3)  # the tracks are made
        server.process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(TTL + 0.3)
            assert worker_layer.lease_sweep("test-sweeper", 5) == [holder]
            assert wait_for(lambda: len(worker.disconnects) == 3, 5)
        finally:
            server.process.send_signal(signal.SIGCONT)
        codes = [close_code(wait_closed(ws, TTL + 3)[1]) for ws in clients]
        assert codes == [1012] * 3
        time.sleep(0.5)
        assert len(worker.disconnects) == 3, worker.disconnects  # the sweeper's, and no second one
        assert {m["code"] for m in worker.disconnects} == {1006}
    assert server.output().count("lease expired") == 1, server.output()


def test_broadcast_reaches_every_socket_of_a_server_whose_reply_queue_is_over_the_normal_capacity(
    start_server, worker_layer, redis_url, key_prefix
):
    server = start_server("--lease-ttl", str(TTL))
    # The application's layer has the default capacity (100): a server's reply queue gets 10,000.
    app_layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, capacity=100)
    with Worker(worker_layer, echo=True) as worker:
        clients = [ws_connect(server.ws_url + "/") for _ in range(10)]
        assert wait_for(lambda: len(worker.connects) == 10, 5)
        channels = [m["reply_channel"] for m in worker.connects]
        for channel in channels:
            app_layer.group_add("capacity-room", channel)
        server.process.send_signal(signal.SIGSTOP)  # a busy server: its replies pile up
        try:
            for i in range(300):
                app_layer.send(channels[i % 10], {"text": f"reply {i // 10}"})
            assert app_layer.channel_statistics(channels[0])["messages_pending"] >= 290  # one may be in flight
            app_layer.send_group("capacity-room", {"text": "broadcast"})
            assert app_layer.global_statistics()["channel_full_count"] == 0
        finally:
            server.process.send_signal(signal.SIGCONT)
        for ws in clients:
            assert [ws.recv(timeout=5) for _ in range(31)] == [f"reply {i}" for i in range(30)] + ["broadcast"]
            ws.close()
    app_layer.close()


def test_sockets_gone_at_once_leave_no_tracking_behind(start_server, worker_layer):
    server = start_server("--lease-ttl", str(TTL))
    holder = server.reply_prefix()
    for _ in range(40):
        RawWebSocket(server.port, "/").abort()  # handshake and RST together: connect and close in one go
    time.sleep(1.0)
    disconnects = drain(worker_layer, "websocket.disconnect")
    connects = drain(worker_layer, "websocket.connect", settle=0)
    assert len(disconnects) == len(connects) and len({m["reply_channel"] for m in disconnects}) == len(connects)
    assert worker_layer.lease_connections(holder) == []  # else a sweep would send a second disconnect


def test_a_socket_opened_while_redis_is_down_is_tracked_once_it_is_back(start_server, key_prefix):
    redis_server = RedisServer(extra_args=["--appendonly", "yes", "--appendfsync", "always"])  # keeps its data
    redis_server.start()
    layer = RedisChannelLayer(hosts=[redis_server.url], prefix=key_prefix, blocking_timeout=1)
    try:
        server = start_server("--lease-ttl", "6", env={"TEST_REDIS_URL": redis_server.url})
        holder = server.reply_prefix()
        assert wait_for(lambda: holder in layer.lease_holders(), 5)
        redis_server.kill()
        pending = connect_in_background(server.ws_url + "/")
        time.sleep(1.5)  # the connect waits in the server; tracking it fails meanwhile
        redis_server.restart()
        with Worker(layer, echo=True) as worker:
            ws = pending.result(15)
            reply_channel = worker.connects[0]["reply_channel"]
            assert wait_for(lambda: reply_channel in layer.lease_connections(holder), 5)
            ws.close()
            assert wait_for(lambda: len(worker.disconnects) == 1, 5)
        assert layer.lease_connections(holder) == []
    finally:
        layer.close()
        redis_server.cleanup()
