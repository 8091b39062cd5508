"""Several hosts for real: Redis, two interface servers and the workers each in a network namespace of their own.

    host a  10.213.X.10  redis-server (the one Redis)
    host b  10.213.X.11  interface-server --lease-ttl 3   (a `web` dyno)
    host c  10.213.X.12  interface-server --lease-ttl 3   (another `web` dyno)
    host d  10.213.X.13  two `manage.py runworker`        (workers scaled apart)
    test process (root namespace, 10.213.X.1): the clients, like browsers behind a load balancer

Consumers: tests/stack/fault_consumers.py, /fault/room/ joins "fault-room" on connect and echoes.
Needs root (`ip netns add`); skipped with the reason otherwise. Run with `-s` to see the figures.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import statistics
import sys
import time

import pytest

from channels_core.layers import RedisChannelLayer
from tests.interface_server.harness import ROOT
from tests.interface_server.ws_support import ws_connect
from tests.support.waiting import wait_for

from .fault_consumers import ROOM
from .harness import Stack

ROUTING = {"TEST_CHANNEL_ROUTING": "tests.stack.fault_consumers.channel_routing"}
LEASE_TTL = 3
REDIS_PORT = 6379  # each host has its own port space: the usual ports, as on real machines
WEB_PORT = 8000
SOCKETS_PER_SERVER = 5
ECHO_ROUNDS = 20


def start_redis(host, tmp_path):
    redis = host.run(
        ["redis-server", "--bind", host.address, "--port", str(REDIS_PORT), "--protected-mode", "no",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        label="redis",
    )  # fmt: skip
    redis.wait_for_port(REDIS_PORT, host=host.address, timeout=10)
    return redis


def start_web(host, env):
    server = host.run(
        [sys.executable, "-m", "interface_server", "tests.project.asgi:channel_layer",
         "-b", host.address, "-p", str(WEB_PORT), "--lease-ttl", str(LEASE_TTL)],
        label="interface-server", cwd=ROOT, env=env,
    )  # fmt: skip
    server.wait_for("Listening on", timeout=20)
    match = re.search(r"Replies arrive on (\S+!)", server.output())
    assert match, server.output()
    return server, match.group(1)


def start_worker(host, env, tmp_path, index):
    worker = host.run(
        [sys.executable, "-m", "django", "runworker", "--threads", "2"],
        label="runworker", cwd=ROOT, env=env, log=tmp_path / f"worker-{index}.log",
    )  # fmt: skip
    return worker


def echo_round_trips(sockets, tag: str, rounds: int) -> list[float]:
    """Every socket sends its own text `rounds` times and must get exactly that text back; the round trips."""
    times = []
    for k in range(rounds):
        for i, ws in enumerate(sockets):
            text = f"{tag}-{i}-{k}"
            started = time.monotonic()
            ws.send(text)
            assert ws.recv(timeout=10) == text
            times.append(time.monotonic() - started)
    return times


def pipelined_echo(sockets, tag: str, frames: int) -> None:
    """All sockets send `frames` texts each before any reply is read: replies for both servers are in flight
    together, and each socket must still get exactly its own texts. (In any order: these consumers are not
    under enforce_ordering and two workers with two threads each handle them in parallel.)"""
    for i, ws in enumerate(sockets):
        for k in range(frames):
            ws.send(f"{tag}-{i}-{k}")
    for i, ws in enumerate(sockets):
        received = sorted(ws.recv(timeout=10) for _ in range(frames))
        assert received == sorted(f"{tag}-{i}-{k}" for k in range(frames))


def expect_broadcast(sockets, text: str) -> None:
    for ws in sockets:
        assert ws.recv(timeout=10) == text


def abort(ws) -> None:
    """Drop a client whose server vanished: no closing handshake (nobody would answer it)."""
    with contextlib.suppress(OSError):
        ws.socket.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        ws.socket.close()


def ms(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms (n={len(values)})"


@pytest.mark.slow
def test_two_servers_on_two_hosts_broadcast_reply_and_survive_one_host_dying(network, key_prefix, tmp_path):
    a, b, c, d = (network.add_host(label) for label in "abcd")
    start_redis(a, tmp_path)
    redis_url = f"redis://{a.address}:{REDIS_PORT}/0"
    stack = Stack(redis_url, key_prefix, tmp_path, extra_env=ROUTING)  # the env and database, not its processes
    env = dict(os.environ, PYTHONPATH=str(ROOT), **stack.env)
    workers = [start_worker(d, env, tmp_path, i) for i in range(2)]
    (_, b_prefix), (c_server, c_prefix) = start_web(b, env), start_web(c, env)
    for worker in workers:
        worker.wait_for("Listening on channels", timeout=30)
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix)  # the test reaches host a over the bridge
    clients = []
    try:
        on_b = [ws_connect(f"ws://{b.address}:{WEB_PORT}/fault/room/") for _ in range(SOCKETS_PER_SERVER)]
        on_c = [ws_connect(f"ws://{c.address}:{WEB_PORT}/fault/room/") for _ in range(SOCKETS_PER_SERVER)]
        clients = on_b + on_c

        def members() -> list[str]:
            return layer.group_channels(ROOM)

        assert wait_for(lambda: len(members()) == 2 * SOCKETS_PER_SERVER, 15), members()
        assert sum(m.startswith(b_prefix) for m in members()) == SOCKETS_PER_SERVER
        assert sum(m.startswith(c_prefix) for m in members()) == SOCKETS_PER_SERVER
        assert {b_prefix, c_prefix} <= set(layer.lease_holders())

        # Every reply reaches the right server and the right socket, through workers on another host.
        b_trips = echo_round_trips(on_b, "b", ECHO_ROUNDS)
        c_trips = echo_round_trips(on_c, "c", ECHO_ROUNDS)
        pipelined_echo(clients, "both", 20)
        # One group send reaches the sockets of both servers.
        layer.send_group(ROOM, {"text": "broadcast-1"})
        expect_broadcast(clients, "broadcast-1")

        # Host b dies: unplugged, then every process in it SIGKILLed.
        b.crash()
        killed = time.monotonic()
        for ws in on_b:
            abort(ws)
        clients = on_c
        # Host c's clients are not disturbed: echo and broadcasts go on at once (b's members still listed).
        c_trips_during = echo_round_trips(on_c, "c-after", 5)
        layer.send_group(ROOM, {"text": "broadcast-2"})
        expect_broadcast(on_c, "broadcast-2")

        # The lease of b's server runs out; a worker's sweeper runs the disconnects of b's sockets.
        assert wait_for(lambda: len(members()) == SOCKETS_PER_SERVER, LEASE_TTL + 20, interval=0.05), members()
        swept = time.monotonic() - killed
        assert all(m.startswith(c_prefix) for m in members()), members()
        assert b_prefix not in layer.lease_holders()

        # b's users come back through the load balancer, now to c: everyone is served by c.
        on_c_again = [ws_connect(f"ws://{c.address}:{WEB_PORT}/fault/room/") for _ in range(SOCKETS_PER_SERVER)]
        clients = on_c + on_c_again
        assert wait_for(lambda: len(members()) == 2 * SOCKETS_PER_SERVER, 15), members()
        layer.send_group(ROOM, {"text": "broadcast-3"})
        expect_broadcast(clients, "broadcast-3")
        echo_round_trips(clients, "c-final", 3)

        print(
            f"\nmultihost (redis on {a.address}, web on {b.address} and {c.address}, 2 runworkers on {d.address}):"
            f"\n  echo round trips via host b: {ms(b_trips)}; via host c: {ms(c_trips)}"
            f"\n  host c right after host b died: {ms(c_trips_during)}"
            f"\n  host b's {SOCKETS_PER_SERVER} disconnects swept {swept:.2f} s after the kill (lease {LEASE_TTL} s)"
        )
        for process in [*workers, c_server]:
            assert "Traceback" not in process.output(), process.output()
    finally:
        for ws in clients:  # no closing handshake: after a failure unread frames could hold it 3 s per socket
            abort(ws)
        layer.close()
