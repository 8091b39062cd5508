"""Presence through the whole stack: an interface server SIGKILLed with members present.

Two interface servers and a real `runworker` (its sweeper) over Redis, and over IPC; the
consumers (tests/stack/presence_consumers.py) join every socket to one group
with presence and join/leave events on. The watcher, on the surviving
server, hears the events.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from channels_core.layers import RedisChannelLayer
from tests.interface_server.harness import ServerProcess
from tests.interface_server.ws_support import RawWebSocket, ws_connect
from tests.support.waiting import wait_for

from .harness import Stack
from .presence_consumers import ROOM

ROUTING = {"TEST_CHANNEL_ROUTING": "tests.stack.presence_consumers.channel_routing"}
LEASE_TTL = 3.0
PING_TIMEOUT = 5.0
VICTIMS = 200


def _events(ws, count: int, deadline: float) -> list[dict]:
    """Presence events the watcher receives until it has `count` or `deadline` (time.monotonic()) passes."""
    got: list[dict] = []
    while len(got) < count and time.monotonic() < deadline:
        try:
            got.append(json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic()))))
        except TimeoutError:
            break
    return got


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["redis", "ipc"])
def test_sigkilled_servers_members_leave_presence_within_ping_timeout_plus_5s_with_leave_events(
    kind, redis_url, key_prefix, tmp_path
):
    if kind == "ipc":
        pytest.importorskip("posix_ipc")
        from channels_core.layers.ipc.layer import IPCChannelLayer

        prefix = f"t{uuid.uuid4().hex[:12]}"
        env = {**ROUTING, "DJANGO_SETTINGS_MODULE": "tests.apps.topology_settings", "TEST_LAYER_URL": f"ipc://{prefix}"}
        stack = Stack(redis_url, prefix, tmp_path, extra_env=env)
        layer = IPCChannelLayer(prefix=prefix)
    else:
        stack = Stack(redis_url, key_prefix, tmp_path, extra_env=ROUTING)
        layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix)
    options = ["--lease-ttl", str(LEASE_TTL), "--ping-timeout", str(PING_TIMEOUT)]
    survivor = None
    victims: list[RawWebSocket] = []
    try:
        doomed = stack.start_server(*options)
        survivor = ServerProcess("tests.project.asgi:channel_layer", options, env=stack.env).start()
        stack.start_worker("--threads", "4")
        doomed_prefix = doomed.reply_prefix()

        watcher = ws_connect(survivor.ws_url + "/presence/?name=watcher")
        assert wait_for(lambda: len(layer.presence_members(ROOM)) == 1, 10)
        for i in range(VICTIMS):
            ws = RawWebSocket(doomed.port, None, timeout=20)
            ws.send_handshake(f"/presence/?name=v{i}")
            victims.append(ws)
        for ws in victims:
            ws.expect_upgrade()
        assert wait_for(lambda: len(layer.presence_members(ROOM)) == VICTIMS + 1, 30)
        joins = _events(watcher, VICTIMS, time.monotonic() + 30)
        assert sorted(e["user"] for e in joins) == sorted(f"v{i}" for i in range(VICTIMS))
        assert {e["presence"] for e in joins} == {"join"}
        members = layer.presence_members(ROOM)
        assert sum(1 for m in members if m.channel.startswith(doomed_prefix)) == VICTIMS
        assert {m.info["name"] for m in members} == {"watcher"} | {f"v{i}" for i in range(VICTIMS)}

        doomed.process.kill()  # SIGKILL: no disconnect, no lease end
        killed = time.monotonic()
        bound = PING_TIMEOUT + 5

        def only_the_watcher() -> bool:
            return [m.user for m in layer.presence_members(ROOM)] == ["watcher"]

        assert wait_for(only_the_watcher, bound + 10, interval=0.05), len(layer.presence_members(ROOM))
        gone_after = time.monotonic() - killed
        leaves = _events(watcher, VICTIMS, killed + bound + 10)
        leaves_after = time.monotonic() - killed
        # A duplicate (from the disconnect consumers' discards, run after the sweep) would arrive now.
        leaves += _events(watcher, VICTIMS, time.monotonic() + 1.5)
        print(
            f"\n{kind}: SIGKILL of a server with {VICTIMS} presence members (lease {LEASE_TTL:g} s, ping timeout "
            f"{PING_TIMEOUT:g} s): gone from presence() {gone_after:.2f} s after the kill, the watcher had all "
            f"{len(leaves)} leave events {leaves_after:.2f} s after it (bound: ping_timeout + 5 s = {bound:g} s)"
        )
        assert gone_after <= bound, gone_after
        assert {e["presence"] for e in leaves} == {"leave"}
        assert sorted(e["user"] for e in leaves) == sorted(f"v{i}" for i in range(VICTIMS))  # each once
        assert leaves_after <= bound + 1, leaves_after
        assert layer.group_channels(ROOM) == [members[0].channel]  # only the watcher left in the group
        assert "Presence: removed" in stack.worker_output(0)
        watcher.close()
    finally:
        for ws in victims:
            ws.close()
        if survivor is not None:
            survivor.stop()
        stack.stop()
        layer.flush()
        layer.close()
    if kind == "ipc":
        from channels_core.layers.ipc.layer import shared_objects

        assert shared_objects(stack.env["TEST_LAYER_PREFIX"]) == []
