"""Status at scale: `collect_status` (what `manage.py channels_status` prints) with 10,000 sockets and 1,000 groups.

    python benchmarks/status_bench.py [--quick] [--topology one|cluster|all] [--repeats N]

Starts its own redis-servers (private, free ports, no persistence): one
server, and a Redis Cluster of 3 masters without replicas (the layer's 48
buckets over them). On each it builds, through the layer itself, the state
of a busy deployment:

- SERVERS interface-server leases (info as `LeaseKeeper` publishes it)
  tracking SOCKETS reply channels between them (`lease_track`), each with
  ordering state (`order_advance`, as `enforce_ordering` leaves it);
- WORKERS worker leases;
- GROUPS groups: "everyone" holds every socket, the others 10 sockets each
  (SOCKETS * 2 memberships in all);
- messages waiting: 40 on http.request, 60 on websocket.receive, 5 on each
  interface server's queue, one on each of 200 single-reader `?` channels
  (0.1x all of it with --quick).

Then it times `collect_status(layer)` REPEATS times (median and worst, and
the work behind them: the client's CPU time and the Redis servers' own time
in SCAN and the scripts, from INFO commandstats, which the load of other
processes on the machine does not inflate), checks its figures against the
state (every socket counted in "everyone", every group, every queue, every
process), and times the whole command once (`python -m django
channels_status --json`: Python and Django start-up included, next to
`python -m django version`, the start-up alone) against the same layer.

Target (issue 15): the status command answers in under a second.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import benchmark_parser  # noqa: E402
from harness import load_average  # noqa: E402
from report import Row, Target, print_table, print_verdict  # noqa: E402

from channels_core import __version__  # noqa: E402
from channels_core.layers.redis import RedisChannelLayer  # noqa: E402
from channels_core.status import collect_status  # noqa: E402
from tests.support.redis_cluster import ClusterSetup  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

SERVERS = 4
WORKERS = 8
PREFIX = "statusbench:"
TARGET_SECONDS = 1.0


def build_state(layer: RedisChannelLayer, sockets: int, groups: int, scale: float) -> dict:
    """The deployment's state in the layer; returns what the status must show."""
    now = time.time()
    holders = [f"interface.response.{secrets.token_hex(5)}!" for _ in range(SERVERS)]
    per_server = sockets // SERVERS
    replies = {h: [f"{h}{secrets.token_hex(8)}" for _ in range(per_server)] for h in holders}
    for h in holders:
        info = {
            "kind": "interface-server",
            "pid": 1000 + holders.index(h),
            "host": "bench",
            "version": __version__,
            "started": now - 3600,
            "connections": per_server,
            "load": {"http": 0, "websocket": per_server},
            "dropped": {},
        }
        layer.lease_renew(h, 300, info)
    for w in range(WORKERS):
        info = {
            "kind": "worker",
            "pid": 2000 + w,
            "host": "bench",
            "channels": ["http.request", "websocket.connect", "websocket.receive", "websocket.disconnect"],
            "version": __version__,
            "started": now - 600,
            "load": {"threads": 4, "handled": 12345, "busy": 1},
            "dropped": {},
        }
        layer.lease_renew(f"worker.{w}.bench", 300, info)
    everyone = [r for h in holders for r in replies[h]]
    disconnect = {"path": "/", "order": 0, "code": 1006}

    def one_socket(item: tuple[int, str]) -> None:
        i, reply = item
        holder = reply[: reply.index("!") + 1]
        layer.lease_track(holder, reply, "websocket.disconnect", dict(disconnect, reply_channel=reply))
        layer.order_advance(reply, 0)  # what enforce_ordering leaves after the connect ran
        layer.group_add("everyone", reply)
        if groups > 1:
            layer.group_add(f"room-{i % (groups - 1)}", reply)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one_socket, enumerate(everyone)))
    queues = {"http.request": max(1, int(40 * scale)), "websocket.receive": max(1, int(60 * scale))}
    for name, count in queues.items():
        layer.send_many(name, [{"i": i} for i in range(count)])
    for h in holders:
        layer.send_many(h + "x", [{"text": "reply"}] * 5)
        queues[h] = 5
    for _ in range(max(1, int(200 * scale))):
        name = layer.new_channel("http.response?")
        layer.send(name, {"status": 200})
        queues[name] = 1
    sizes = {"everyone": len(everyone)}
    for i in range(groups - 1):
        sizes[f"room-{i}"] = len(range(i, len(everyone), groups - 1))
    return {"queues": queues, "groups": sizes, "processes": SERVERS + WORKERS}


def check(status: dict, expected: dict) -> None:
    assert status["errors"] == {}, status["errors"]
    got_queues = {q["channel"]: q["pending"] for q in status["queues"]}
    assert got_queues == expected["queues"], (len(got_queues), len(expected["queues"]))
    got_groups = {g["group"]: g["members"] for g in status["groups"]}
    assert got_groups == expected["groups"], (len(got_groups), len(expected["groups"]))
    assert len(status["processes"]) == expected["processes"]


def command_seconds(url: str) -> tuple[float, float, float]:
    """Wall time of `python -m django channels_status --json`, the collect time it reported, and the
    wall time of `python -m django version` (the start-up floor of any management command here)."""
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="tests.project.settings",
        TEST_REDIS_URL=url,
        TEST_LAYER_PREFIX=PREFIX,
    )
    command = [sys.executable, "-m", "django", "channels_status", "--json", "--limit", "2000"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"channels_status failed: {result.stderr}")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "django", "version"], cwd=ROOT, env=env, capture_output=True, timeout=120)
    floor = time.perf_counter() - started
    return wall, json.loads(result.stdout)["elapsed"], floor


def redis_usec(clients: list) -> float:
    """Microseconds the servers spent in commands so far (INFO commandstats, all commands, all servers)."""
    total = 0.0
    for client in clients:
        total += sum(float(stats["usec"]) for stats in client.info("commandstats").values())
    return total


def measure(name: str, url: str, clients: list, sockets: int, groups: int, scale: float, repeats: int) -> list[Row]:
    layer = RedisChannelLayer(hosts=[url], prefix=PREFIX, expiry=300, capacity=1000)
    try:
        layer.flush()
        started = time.perf_counter()
        expected = build_state(layer, sockets, groups, scale)
        print(f"[{name}] state built in {time.perf_counter() - started:.1f} s", flush=True)
        times = []
        cpu = time.process_time()
        usec = redis_usec(clients)
        for _ in range(repeats):
            status = collect_status(layer, limit=2000)
            times.append(status["elapsed"])
        cpu = (time.process_time() - cpu) / repeats
        # Less the INFO call itself, which commandstats counts too (a few µs per server).
        server = (redis_usec(clients) - usec) / 1e6 / repeats
        check(status, expected)
        parts = {}
        for part, call in (
            ("inspect_queues", lambda: layer.inspect_queues(2000)),
            ("inspect_groups", lambda: layer.inspect_groups(2000)),
            ("lease_holders", layer.lease_holders),
        ):
            t0 = time.perf_counter()
            call()
            parts[part] = time.perf_counter() - t0
        wall, reported, floor = command_seconds(url)
        print(
            f"[{name}] collect_status over {repeats} runs: median {statistics.median(times) * 1e3:.1f} ms, "
            f"worst {max(times) * 1e3:.1f} ms, client CPU {cpu * 1e3:.1f} ms, Redis {server * 1e3:.1f} ms "
            f"per run; {load_average()}; "
            + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in parts.items())
            + f"; command {wall:.2f} s wall ({reported * 1e3:.1f} ms collecting; `django version` {floor:.2f} s)",
            flush=True,
        )
        target = Target(TARGET_SECONDS)
        label = f"{name}, {sockets:,} sockets, {groups:,} groups"

        def row(measure: str, seconds: float, with_target: bool = True) -> Row:
            return Row(
                measure,
                f"{seconds:.3f} s",
                "-",
                "-",
                str(target) + " s" if with_target else "-",
                target.met(seconds) if with_target else None,
            )

        return [
            row(f"collect_status median ({label})", statistics.median(times)),
            row(f"collect_status worst ({label})", max(times)),
            row(f"  client CPU per collect_status ({name})", cpu, False),
            row(f"  Redis time per collect_status, all servers ({name})", server, False),
            row(f"channels_status --json, whole process incl. start-up ({label})", wall, False),
            row(f"python -m django version, start-up alone ({name})", floor, False),
        ]
    finally:
        layer.flush()
        layer.close()


def main() -> int:
    parser = benchmark_parser(__doc__, "1,000 sockets and 100 groups instead of 10,000 and 1,000")
    parser.add_argument("--topology", choices=["one", "cluster", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    sockets, groups = int(10_000 * scale), int(1_000 * scale)
    rows: list[Row] = []
    if args.topology in ("one", "all"):
        with RedisServer() as server:
            client = server.client()
            rows += measure("1 redis", server.url, [client], sockets, groups, scale, args.repeats)
            client.close()
    if args.topology in ("cluster", "all"):
        cluster = ClusterSetup(masters=3, replicas=0)
        try:
            cluster.start()
            clients = [node.client() for node in cluster.nodes]
            rows += measure("cluster 3m", cluster.url(), clients, sockets, groups, scale, args.repeats)
            for client in clients:
                client.close()
        finally:
            cluster.cleanup()
    print_table(rows)
    print_verdict(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
