"""Our stack beside the stacks people would pick instead, in one run, on the same app (benchmarks/peerapp).

    python benchmarks/peers_bench.py [--quick] [--plot] [--redis-url URL | --private-redis]
        [--only http|echo|broadcast]

The peers come from PyPI into ~/.cache/channels-core-benchmarks/venv-peers (peer_env.py, pinned in
peers-requirements.txt; the venv shares this interpreter's Django, Twisted and redis-py):

1. HTTP GET / (a Django view answering "OK"): ours (interface-server + 2 runworkers over Redis)
   against gunicorn with 2 sync workers, with `wrk -t2 --latency` at 10, 50 and 100 concurrent
   keep-alive clients (--quick: 50), the two sides taking turns; requests/s, p50, p99 and their
   ratios, and the CPU each process spent per request. Targets at 50 clients: ours >= 0.9x
   gunicorn's requests/s, p99 <= 1.5x gunicorn's;
2. WebSocket echo round trip, 1 client each, sequential 100-byte texts, taking turns message by
   message: ours (the consumer runs in a worker: two layer hops) against Channels 4's async
   consumer inside daphne 4 (no hop). Targets: p50 <= 1x Channels 4's, p99 <= 1.5x;
3. Group broadcast from a consumer: 1,000 WebSockets (--quick: 200) on /shootout/, one random
   client at a time sends the shootout's `broadcast` (the consumer does a group send, then
   answers `broadcastResult`), 50 rounds (--quick: 20), one in flight; the time until the LAST
   client has each one, the sender's round trip, missing and extra messages, and the CPU of the
   load generator (Node's ws, benchmarks/shootout/client.mjs) beside the servers'. Target: last
   client p99 <= 30 ms at 1,000 sockets, 0 lost.

Every figure is printed with its peer and the ratio. --plot writes docs/images/peers_http.png
and docs/images/peers_latency.png (matplotlib from the peer venv). Every process started here
is stopped at the end and every Redis key under the run's prefix deleted. Exits 0 unless
something crashes; a missed target is marked MISSED.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import peer_env
import redis
from common import benchmark_parser, millis, percentile, ws_connect
from e2e_bench import Side, print_cpu, redis_pid
from harness import ROOT, Run, Target, execute, http_get, load_average, raise_fd_limit, run_wrk, stop_on_signals
from peer_stacks import (
    Daphne,
    GunicornPeer,
    OursStack,
    cpu_of,
    node_client,
    plot,
    start_redis,
    teardown,
    tree_state,
    write_results,
)

WRK_THREADS = 2
TARGET_CONNECTIONS = 50  # the HTTP targets are stated at 50 concurrent clients
MESSAGE_SIZE = 100
WARMUP = 50
RECV_TIMEOUT = 10.0


@dataclass(frozen=True)
class Sizes:
    http_connections: tuple[int, ...]
    http_seconds: int
    http_warmup: int
    http_rounds: int
    echo_messages: int
    sockets: int
    broadcasts: int


FULL = Sizes(
    (10, 50, 100), http_seconds=10, http_warmup=2, http_rounds=2, echo_messages=1000, sockets=1000, broadcasts=50
)
QUICK = Sizes((50,), http_seconds=3, http_warmup=1, http_rounds=1, echo_messages=200, sockets=200, broadcasts=20)


def rate(value: float) -> str:
    return f"{value:,.0f} req/s"


# -- 1: HTTP ------------------------------------------------------------------------------------------------


def wrk_side(side: Side, connections: int, seconds: int, redis_server: int | None) -> dict:
    """One wrk run against `side` with the CPU of each process involved (as e2e_bench.measure_side)."""
    pids = dict(side.processes())
    if redis_server is not None and side.name == "ours":
        pids["redis-server"] = redis_server
    before = cpu_of(pids)
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_wrk(side.port, seconds, WRK_THREADS, connections, echo=False)
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = cpu_of(pids)
    result["cpu"] = {k: after[k] - before[k] for k in after if k in before}
    result["cpu"]["wrk"] = (wrk_after.ru_utime + wrk_after.ru_stime) - (wrk_before.ru_utime + wrk_before.ru_stime)
    result["seconds"] = seconds
    return result


def bench_http(run: Run, ours: OursStack, results: dict) -> None:
    sizes: Sizes = run.sizes
    gunicorn = GunicornPeer(run, f"{run.prefix}gunicorn:")
    print(f'\n1. HTTP GET / (Django view "OK"), wrk -t{WRK_THREADS} --latency, {sizes.http_seconds} s a run,')
    print(f"   {sizes.http_rounds} round(s) per side and client count, taking turns; gunicorn: {gunicorn.describe()}")
    sides: list[Side] = [ours, gunicorn]
    for side in sides:
        status, body, closes = http_get(side.port)
        if (status, body) != (200, b"OK"):
            raise RuntimeError(f"{side.name}: GET / answered {status} {body[:200]!r}, not 200 'OK'")
        if closes:
            print(f"   {side.name} closes the connection after each response: wrk reconnects for every request there")
        run_wrk(side.port, sizes.http_warmup, WRK_THREADS, TARGET_CONNECTIONS, echo=False)
    redis_server = redis_pid(run.client)
    http: dict[str, list[dict]] = {side.name: [] for side in sides}
    loads = [os.getloadavg()[0]]
    for connections in sizes.http_connections:
        runs: dict[str, list[dict]] = {side.name: [] for side in sides}
        for rnd in range(sizes.http_rounds):
            for side in sides if rnd % 2 == 0 else list(reversed(sides)):
                result = wrk_side(side, connections, sizes.http_seconds, redis_server)
                loads.append(os.getloadavg()[0])
                runs[side.name].append(result)
                print(
                    f"   -c{connections} {side.name:8}: {rate(result['rate'])}, p50 {millis(result['p50'])},"
                    f" p99 {millis(result['p99'])}, {result['bad']} errors or non-2xx",
                    flush=True,
                )
        for name, done in runs.items():
            http[name].append(
                {
                    "connections": connections,
                    "rate": statistics.fmean(r["rate"] for r in done),
                    "p50": statistics.fmean(r["p50"] for r in done),
                    "p99": statistics.fmean(r["p99"] for r in done),
                    "bad": sum(r["bad"] for r in done),
                }
            )
        if connections == TARGET_CONNECTIONS or len(sizes.http_connections) == 1:
            for name, done in runs.items():
                print_cpu(name, done)
            serving = {name: serving_cpu_per_request(done) for name, done in runs.items()}
    gunicorn.stop()
    results["http"] = http
    results["http_cpu_per_request"] = serving
    results["http_load"] = loads
    for a, b in zip(http["ours"], http["gunicorn"], strict=True):
        c = a["connections"]
        at_target = c == TARGET_CONNECTIONS
        run.compare(
            f"HTTP req/s at {c} clients (vs gunicorn)",
            a["rate"],
            b["rate"],
            rate,
            Target(0.9, at_least=True) if at_target else None,
        )
        run.compare(f"HTTP p50 at {c} clients (vs gunicorn)", a["p50"], b["p50"], millis, None)
        run.compare(
            f"HTTP p99 at {c} clients (vs gunicorn)",
            a["p99"],
            b["p99"],
            millis,
            Target(1.5) if at_target else None,
        )
    c = TARGET_CONNECTIONS if TARGET_CONNECTIONS in sizes.http_connections else sizes.http_connections[0]
    us = lambda v: f"{v * 1e6:,.0f} us"  # noqa: E731
    run.compare(
        f"HTTP serving CPU per request at {c} clients (vs gunicorn)", serving["ours"], serving["gunicorn"], us, None
    )
    run.compare(
        f"HTTP req/s per fully busy CPU at {c} clients (vs gunicorn)",
        1 / serving["ours"],
        1 / serving["gunicorn"],
        rate,
        Target(0.9, at_least=True),
    )
    bad = sum(r["bad"] for r in http["ours"])
    run.figure("HTTP errors or non-2xx (ours)", str(bad), "0", bad == 0)
    busiest = max(loads)
    if busiest > (os.cpu_count() or 1):
        run.notes.append(
            f"the machine was busy during the HTTP part (1-minute load average up to {busiest:.1f} on"
            f" {os.cpu_count()} CPUs): under contention the scheduler shares CPU per process, and ours runs 4 busy"
            " processes (interface-server, 2 workers, Redis) to gunicorn's 2, so its req/s ratio is flattered;"
            " the CPU-per-request rows (req/s per fully busy CPU) do not depend on that share"
        )


def serving_cpu_per_request(done: list[dict]) -> float:
    """CPU seconds per request of the serving processes (Redis included for ours; wrk never)."""
    used = sum(v for r in done for k, v in r["cpu"].items() if k != "wrk")
    return used / sum(r["requests"] for r in done)


# -- 2: WebSocket echo -------------------------------------------------------------------------------------


async def echo_turns(urls: dict[str, str], count: int, warmup: int) -> dict[str, list[float]]:
    """`count` sequential texts echoed on one WebSocket per stack, the stacks taking turns message by message."""
    times: dict[str, list[float]] = {name: [] for name in urls}
    sockets = {name: await ws_connect(url) for name, url in urls.items()}
    try:
        for i in range(-warmup, count):
            for name, ws in sockets.items():
                text = f"{i}:".ljust(MESSAGE_SIZE, "x")
                start = time.perf_counter()
                await ws.send(text)
                got = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
                took = time.perf_counter() - start
                if got != text:
                    raise RuntimeError(f"{name}: message {i} came back as {got[:40]!r}")
                if i >= 0:
                    times[name].append(took)
    finally:
        for ws in sockets.values():
            await ws.close()
    return times


def bench_echo(run: Run, ours: OursStack, daphne: Daphne, results: dict) -> None:
    n = run.sizes.echo_messages
    print(f"\n2. WebSocket echo, 1 client per stack x {n:,} sequential {MESSAGE_SIZE}-byte texts, taking turns")
    urls = {s.name: f"ws://127.0.0.1:{s.port}/ws/echo/" for s in (ours, daphne)}
    times = asyncio.run(echo_turns(urls, n, WARMUP))
    pcts = (50, 90, 99)
    for name, samples in times.items():
        print(f"   {name:9}: " + ", ".join(f"p{p} {millis(percentile(samples, p))}" for p in pcts))
    a, b = times["ours"], times["channels4"]
    run.compare("WS echo RTT p50 (vs Channels 4)", percentile(a, 50), percentile(b, 50), millis, Target(1.0))
    run.compare("WS echo RTT p99 (vs Channels 4)", percentile(a, 99), percentile(b, 99), millis, Target(1.5))
    results["echo"] = {
        "title": f"WebSocket echo round trip ({n:,} x {MESSAGE_SIZE} B)",
        "percentiles": [f"p{p}" for p in pcts],
        "stacks": {name: {f"p{p}": percentile(s, p) for p in pcts} for name, s in times.items()},
    }


# -- 3: broadcast ------------------------------------------------------------------------------------------


def bench_broadcast(run: Run, ours: OursStack, daphne: Daphne, results: dict) -> None:
    sizes: Sizes = run.sizes
    n = sizes.sockets
    print(
        f"\n3. Broadcast from a consumer to {n:,} WebSockets on /shootout/ (group send, then broadcastResult),"
        f" {sizes.broadcasts} rounds one at a time, Node ws clients"
    )
    options = {"initial-clients": n, "limit-clients": n, "concurrent": 1, "sample-size": sizes.broadcasts}
    options |= {"limit-rtt-ms": 100000, "max-seconds": 0}
    steps = {}
    for side in (ours, daphne):
        for event in node_client(side, run, options, timeout=300):
            if event["event"] == "step":
                steps[side.name] = event
            elif event["event"] == "done" and side.name not in steps:
                raise RuntimeError(f"{side.name}: the load generator stopped: {event['reason']}")
        s = steps[side.name]
        print(
            f"   {side.name:9}: last client p50 {s['last']['p50']:.1f} ms, p99 {s['last']['p99']:.1f} ms;"
            f" sender RTT p50 {s['rtt']['p50']:.1f} ms; missing {s['missing']}, extra {s['extra']};"
            f" CPU: load generator {s['loadgenCpuPct']:.0f}%, server {s['serverCpuPct']:.0f}%,"
            f" Redis {s['redisCpuPct']:.0f}% of a core; busiest process {s['busiest']['process']}"
            f" {s['busiest']['usPerMessage']:.1f} us CPU per message delivered",
            flush=True,
        )
    a, b = steps["ours"], steps["channels4"]
    sec = 1e-3
    full = not run.args.quick
    for pct in ("p50", "p99"):
        run.compare(
            f"broadcast to last of {n:,} {pct} (vs Channels 4)",
            a["last"][pct] * sec,
            b["last"][pct] * sec,
            millis,
            None,
        )
    run.figure(
        f"broadcast to last of {n:,} p99, ours",
        millis(a["last"]["p99"] * sec),
        "<= 30 ms" if full else "-",
        a["last"]["p99"] <= 30 if full else None,
    )
    run.compare(
        "broadcast server CPU per message delivered (vs Channels 4)",
        a["serverUsPerMessage"] * 1e-6,
        b["serverUsPerMessage"] * 1e-6,
        lambda v: f"{v * 1e6:.1f} us",
        None,
    )
    run.compare("broadcast sender RTT p50 (vs Channels 4)", a["rtt"]["p50"] * sec, b["rtt"]["p50"] * sec, millis, None)
    for name, s in steps.items():
        run.figure(
            f"broadcast messages missing / extra, {name}",
            f"{s['missing']} / {s['extra']} of {s['broadcasts'] * s['clients']:,}",
            "0 / 0" if name == "ours" else "-",
            s["missing"] == 0 and s["extra"] == 0 if name == "ours" else None,
        )
        run.figure(
            f"broadcast CPU, {name}: load generator / server / Redis",
            f"{s['loadgenCpuPct']:.0f}% / {s['serverCpuPct']:.0f}% / {s['redisCpuPct']:.0f}%",
        )
    results["broadcast"] = {
        "title": f"broadcast: time to the last of {n:,} clients",
        "percentiles": ["p50", "p95", "p99"],
        "stacks": {name: {p: s["last"][p] * sec for p in ("p50", "p95", "p99")} for name, s in steps.items()},
        "steps": steps,
    }


# -- main --------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = benchmark_parser(__doc__, "shorter runs, 200 sockets, under a minute")
    parser.add_argument("--plot", action="store_true", help="write docs/images/peers_http.png and peers_latency.png")
    parser.add_argument(
        "--private-redis",
        action="store_true",
        help="start a redis-server of its own on a free port (needs redis-server)",
    )
    parser.add_argument("--plot-dir", default=str(ROOT / "docs" / "images"), help="where --plot writes its PNGs")
    parser.add_argument("--out", default=str(ROOT / "artifacts" / "peers.json"), help="results file (JSON)")
    parser.add_argument(
        "--only", action="append", choices=["http", "echo", "broadcast"], help="run only this part (repeatable)"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    parts = args.only or ["http", "echo", "broadcast"]
    if "http" in parts and not shutil.which("wrk"):
        print("wrk is not installed: the HTTP part needs it (apt-get install wrk)")
        return 2
    stop_on_signals()
    sizes = QUICK if args.quick else FULL
    limit = raise_fd_limit(2 * sizes.sockets + 500, "the broadcast part")
    peer_env.ensure_venv()
    if "broadcast" in parts:
        peer_env.ensure_node()
    versions = peer_env.versions()
    private = start_redis(args)
    client = redis.Redis.from_url(args.redis_url)
    run = Run(args, sizes, f"peers{os.getpid()}:", client)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results: dict = {"date": stamp, "tree": tree_state(), "versions": versions, "quick": args.quick}
    print(f"{load_average()} before the run (a shared 2-core machine: other work may run beside it)")
    print(f"measuring {results['tree']}")
    print(
        f"{stamp}; {'quick' if args.quick else 'full'} run; {os.cpu_count()} CPUs; open-files limit {limit};"
        f" Python {sys.version.split()[0]}; Redis {client.info('server')['redis_version']}; peers {versions}",
        flush=True,
    )

    def work() -> None:
        ours = OursStack(run, f"{run.prefix}ours:")
        print(f"ours: {ours.describe()}", flush=True)
        if "http" in parts:
            bench_http(run, ours, results)
        if {"echo", "broadcast"} & set(parts):
            daphne = Daphne(run, f"{run.prefix}channels4:")
            print(f"\nChannels 4: {daphne.describe()}", flush=True)
            if "echo" in parts:
                bench_echo(run, ours, daphne, results)
            if "broadcast" in parts:
                bench_broadcast(run, ours, daphne, results)
        out = Path(args.out)
        results["load"] = os.getloadavg()[1]  # 5-minute load average over the run, for the charts
        write_results(out, results)
        print(f"\nresults: {out}")
        if args.plot:
            for path in plot("peers", out, Path(args.plot_dir)):
                print(f"chart: {path}")

    return execute(run, work, "peer", lambda: teardown(client, private))


if __name__ == "__main__":
    raise SystemExit(main())
