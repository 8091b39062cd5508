"""`manage.py channels_status` against real state: an interface server, a runworker and Redis.

The figures the command prints are checked against what the test did: the
sockets it opened (their connect joins a group), messages it left waiting,
sends it had refused as full. Timing is not checked here (see
benchmarks/status_bench.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from channels_core import __version__
from channels_core.layers import ChannelFull, RedisChannelLayer
from channels_core.status import collect_status, render_text
from tests.interface_server.harness import ROOT
from tests.stack.harness import Stack
from tests.stack.lease_consumers import ROOM
from tests.stack.test_leases_stack import _open_raw
from tests.support.waiting import wait_for

ROUTING = {"TEST_CHANNEL_ROUTING": "tests.stack.lease_consumers.channel_routing"}
SOCKETS = 12
WORKER_THREADS = 3


@pytest.fixture
def stack(redis_url, key_prefix, tmp_path):
    stack = Stack(redis_url, key_prefix, tmp_path, extra_env=ROUTING)
    yield stack
    stack.stop()
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix)
    layer.flush()
    layer.close()


def _status(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    result = stack.manage("channels_status", *args)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.slow
def test_the_command_shows_the_servers_workers_sockets_groups_queues_and_drops(stack, redis_url, key_prefix):
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, capacity=100)
    server = stack.start_server()
    worker = stack.start_worker("--threads", str(WORKER_THREADS), "--only-channels", "websocket.*")
    sockets = _open_raw(server.port, SOCKETS)
    assert wait_for(lambda: layer.group_channels(ROOM) and len(layer.group_channels(ROOM)) == SOCKETS, 10)
    # Messages nobody reads (no worker listens on http.request here), one refused send.
    for i in range(3):
        layer.send("status.idle", {"i": i})
    for _ in range(layer.get_capacity("status.full")):
        layer.send("status.full", {})
    with pytest.raises(ChannelFull):
        layer.send("status.full", {})
    time.sleep(0.3)
    holders = lambda: collect_status(layer)["processes"]  # noqa: E731
    # The worker's lease carries its load from its second renewal on (a second apart).
    assert wait_for(lambda: any(p["load"].get("handled", 0) >= SOCKETS for p in holders()), 10), holders()
    # The server's, at its next renewal (every lease_ttl / 3: 1.7 s).
    assert wait_for(lambda: any(p["load"].get("websocket") == SOCKETS for p in holders()), 10), holders()

    status = json.loads(_status(stack, "--json").stdout)
    assert status["errors"] == {}
    by_kind = {p["kind"]: p for p in status["processes"]}
    assert [p["kind"] for p in status["processes"]] == ["interface-server", "worker"]
    iface, work = by_kind["interface-server"], by_kind["worker"]
    assert iface["holder"] == server.reply_prefix() and iface["pid"] == server.process.pid
    assert work["pid"] == worker.pid
    for process in (iface, work):
        assert process["version"] == __version__
        assert 0 < process["uptime"] < 120 and process["host"]
    assert iface["load"] == {"http": 0, "websocket": SOCKETS}
    assert work["load"]["threads"] == WORKER_THREADS
    assert work["load"]["handled"] >= SOCKETS  # each socket's connect ran
    assert 0 <= work["load"]["busy"] <= WORKER_THREADS
    assert sorted(work["channels"]) == ["websocket.connect", "websocket.disconnect", "websocket.receive"]
    assert status["groups"] == [{"group": ROOM, "members": SOCKETS}]
    queues = {q["channel"]: q for q in status["queues"]}
    assert set(queues) == {"status.idle", "status.full"}, queues
    assert queues["status.idle"]["pending"] == 3 and queues["status.idle"]["capacity"] == 100
    assert queues["status.full"]["pending"] == 100
    assert 0.3 <= queues["status.idle"]["oldest_age"] < 60
    assert [q["channel"] for q in status["queues"]] == ["status.full", "status.idle"]  # fullest first
    assert status["dropped"]["channel_full"] == 1
    assert status["dropped"]["messages_sent"] >= 103
    assert status["dropped"]["total"] == 1

    text = _status(stack).stdout
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("  ") and line.split()}
    assert rows["status.idle"][1:3] == ["3", "100"] and rows["status.full"][1:3] == ["100", "100"]
    assert rows[ROOM][1] == str(SOCKETS)
    assert rows["interface-server"][1:5] == [server.reply_prefix(), iface["host"], str(iface["pid"]), __version__]
    assert f"websocket {SOCKETS}" in text and f"{WORKER_THREADS} threads" in text
    assert "Dropped: 1 sends to full channels" in text

    # A socket goes: its disconnect leaves the group, the server's load follows at its next renewal (5 s).
    sockets.pop().close()
    assert wait_for(lambda: collect_status(layer)["groups"] == [{"group": ROOM, "members": SOCKETS - 1}], 10)
    for ws in sockets:
        ws.close()
    layer.close()


def test_watch_refreshes_until_ctrl_c_and_exits_cleanly(redis_url, key_prefix):
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix)
    layer.send("watch.me", {})
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="tests.project.settings",
        TEST_REDIS_URL=redis_url,
        TEST_LAYER_PREFIX=key_prefix,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "channels_status", "--watch", "0.2", "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        snapshots = [json.loads(process.stdout.readline()) for _ in range(3)]
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        layer.flush()
        layer.close()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert all(s["queues"][0]["channel"] == "watch.me" for s in snapshots)
    assert snapshots[0]["time"] < snapshots[1]["time"] < snapshots[2]["time"]


def test_unknown_alias_and_bad_options_are_command_errors():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="No channel layer named 'nope'"):
        call_command("channels_status", "--layer", "nope")
    with pytest.raises(CommandError, match="--watch"):
        call_command("channels_status", "--watch", "0")


def test_unreachable_layer_is_reported_per_section_not_raised():
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"], connection_kwargs={"socket_connect_timeout": 0.5})
    status = collect_status(layer)
    assert set(status["errors"]) == {"queues", "groups", "processes", "statistics"}
    assert status["queues"] is status["groups"] is status["processes"] is None
    text = render_text(status)
    assert "ERROR reading queues: LayerConnectionError" in text and "Processes: could not be read" in text
    layer.close()


def test_an_acl_user_with_the_documented_commands_plus_zcount_sees_everything():
    from tests.security.test_redis_acl import LAYER_COMMANDS, PASSWORD, acl_setuser
    from tests.support.redis_server import RedisServer

    prefix = "acl-status:"
    rules = [f"~{prefix}*", "resetchannels", "-@all", *(f"+{c}" for c in {*LAYER_COMMANDS, "zcount"})]
    with RedisServer() as server:
        admin = server.client()
        acl_setuser(admin, "chan", rules)
        admin.close()
        # The state is made with every command allowed: only what inspection runs is under test here.
        maker = RedisChannelLayer(hosts=[server.url], prefix=prefix)
        maker.send("acl.queue", {})
        maker.group_add("acl.group", "acl.proc!a")
        maker.group_add("acl.group", "acl.plain")
        maker.lease_renew("acl.proc!", 5, {"kind": "interface-server"})
        maker.close()
        layer = RedisChannelLayer(hosts=[f"redis://chan:{PASSWORD}@127.0.0.1:{server.port}/0"], prefix=prefix)
        try:
            status = collect_status(layer)
            assert status["errors"] == {}
            assert [q["channel"] for q in status["queues"]] == ["acl.queue"]
            assert status["groups"] == [{"group": "acl.group", "members": 2}]
            assert [p["holder"] for p in status["processes"]] == ["acl.proc!"]
        finally:
            layer.close()


@pytest.mark.parametrize("backend", ["inmemory", "redis"])
def test_expired_messages_ahead_of_live_ones_are_not_counted(backend, redis_url, key_prefix):
    """Expired messages stay in a Redis list until the next send or pop purges them: inspection skips them."""
    from channels_core.layers import InMemoryChannelLayer

    if backend == "redis":
        layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, expiry=0.3)
    else:
        layer = InMemoryChannelLayer(expiry=0.3)
    try:
        layer.send_many("exp.mixed", [{"old": i} for i in range(4)])
        time.sleep(0.4)
        # On Redis pushed behind the expired ones: a send purges only a queue that looks full.
        for _ in range(3):
            layer.send("exp.mixed", {"new": True})
        (queue,) = layer.inspect_queues()
        assert queue["channel"] == "exp.mixed" and queue["pending"] == 3, queue
        assert 0 <= queue["oldest_age"] < 0.3
    finally:
        if backend == "redis":
            layer.flush()
        layer.close()


def test_lease_info_of_a_worker_counts_its_threads_messages_and_drops():
    from channels_core.layers import InMemoryChannelLayer
    from worker import WorkerGroup
    from worker.sweeper import Sweeper, SweepingWorker

    layer = InMemoryChannelLayer()
    group = WorkerGroup(layer, n_threads=3)
    sweeper = Sweeper(layer, ["http.request"], lease_ttl=5)
    SweepingWorker(group, sweeper)
    group.handled, group.workers[0].handled, group.workers[1].handled = 5, 7, 0
    group.workers[1].in_job = True
    group.invalid.drop("http.request", "test")
    sweeper.tick()
    info = layer.lease_holders()[sweeper.holder]
    assert info["load"] == {"threads": 3, "handled": 12, "busy": 1}
    assert info["dropped"] == {"invalid": 1}
    assert info["version"] == __version__ and time.time() - 5 < info["started"] <= time.time()
    assert info["kind"] == "worker" and info["channels"] == ["http.request"] and info["pid"] == os.getpid()
    sweeper.stop()
    layer.close()


def test_lease_info_of_an_interface_server_counts_connections_by_type_and_its_drops():
    from types import SimpleNamespace

    from interface_server.lease_keeper import LeaseKeeper
    from interface_server.ws_protocol import WebSocketProtocol

    websocket = WebSocketProtocol.__new__(WebSocketProtocol)  # never connected: only its type counts here
    server = SimpleNamespace(
        channel_layer=None,
        reply_prefix="interface.response.test!",
        config=SimpleNamespace(lease_ttl=15),
        connections={websocket, object(), object()},
        counters={"send_timeouts": 2, "paused": 9, "replies_dropped": 0},
    )
    info = LeaseKeeper(server).current_info()
    assert info["load"] == {"http": 2, "websocket": 1} and info["connections"] == 3
    assert info["dropped"] == {"send_timeouts": 2}  # drops only, non-zero only
    assert info["kind"] == "interface-server" and info["version"] == __version__ and info["pid"] == os.getpid()


def test_tables_show_limit_rows_but_count_them_all(redis_url, key_prefix):
    from io import StringIO

    from django.core.management import call_command

    from channels_core.asgi import ChannelLayerWrapper, channel_layers

    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix)
    channel_layers.set("status-test", ChannelLayerWrapper(layer, "status-test", []))
    try:
        for i in range(3):
            layer.send_many(f"limit.q{i}", [{}] * (i + 1))
        out = StringIO()
        call_command("channels_status", "--layer", "status-test", "--limit", "2", stdout=out)
        text = out.getvalue()
        assert "Queues with messages waiting (fullest first): 3, showing 2" in text
        assert "limit.q2" in text and "limit.q1" in text and "limit.q0" not in text
        assert text.startswith(f"Channel layer status-test: {layer!r}")
        out = StringIO()
        call_command("channels_status", "--layer", "status-test", "--json", "--limit", "1", stdout=out)
        assert [q["channel"] for q in json.loads(out.getvalue())["queues"]] == ["limit.q2"]
    finally:
        channel_layers.set("status-test", None)
        layer.flush()
        layer.close()
