"""How capacity grows with `interface-server --processes N`: 1 process against N, in one run.

    python benchmarks/processes_bench.py [--quick] [--processes N] [--redis-url URL | --private-redis]
        [--only http|shootout|echo]

Our stack (peer_stacks.OursStack: interface-server + 2 runworkers over Redis, serving benchmarks/peerapp)
twice, with `--processes 1` and `--processes N` (default 2), the same workers' count on each:

1. HTTP GET / (a Django view answering "OK"), `wrk -t2 --latency -c50`, the two stacks taking turns
   (both started before the first run, so each run finds the other idle): requests/s and p99 with the
   ratio N / 1, and the interface-server CPU per request and each process's share of it (how evenly
   the kernel spread the connections over the SO_REUSEPORT sockets);
2. the websocket-shootout's broadcast (shootout_bench.py's protocol, sizes and load generator, Node's
   `ws`), one stack after the other: the largest client count at p95 <= 500 ms with the ratio N / 1,
   and at the last passing step the busiest interface-server process's share of a core;
3. the same steps with the shootout's `echo` (each request answered to its sender only, through a
   worker): WebSocket request/response capacity, the largest client count at p95 <= 500 ms, N / 1.

The machine matters more here than anywhere: N processes only help when N cores are free for them,
and on a 2-core machine the workers, Redis and the load generator share the same two cores, so the
ratio shows what a second process gains once the one process is no longer the limit, not N x.
--quick: 5 s wrk runs and the shootout's quick steps (100-300 clients, which both pass: a smoke run,
no ratio worth reading). Every process started here is stopped at the end and every Redis key under
the run's prefix deleted. Exits 0 unless something crashes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import peer_env
import redis
import shootout_bench
from common import benchmark_parser, millis
from harness import ROOT, Run, execute, http_get, load_average, raise_fd_limit, run_wrk, stop_on_signals
from peer_stacks import OursStack, cpu_of, node_client, start_redis, teardown, tree_state, write_results

from channels_core.test.processes import child_pids

CONNECTIONS = 50
WRK_THREADS = 2
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Sizes:
    http_seconds: int
    http_rounds: int
    shootout: shootout_bench.Sizes


FULL = Sizes(http_seconds=10, http_rounds=2, shootout=shootout_bench.FULL)
QUICK = Sizes(http_seconds=5, http_rounds=1, shootout=shootout_bench.QUICK)


def start(run: Run, processes: int) -> OursStack:
    """Our stack with `--processes processes`, once every server process answers."""
    stack = OursStack(run, f"{run.prefix}p{processes}:", server_args=["--processes", str(processes)])
    deadline = time.monotonic() + START_TIMEOUT
    while processes > 1 and len(child_pids(stack.server.pid)) < processes:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the group did not start {processes} processes:\n{stack.server.output()}")
        time.sleep(0.05)
    while http_get(stack.port)[:2] != (200, b"OK"):  # the parent listens at once; its children a moment later
        if time.monotonic() > deadline:
            raise RuntimeError(f"GET / never answered 200:\n{stack.server.output()}")
        time.sleep(0.2)
    return stack


def serving(stack: OursStack) -> dict[str, int]:
    """The interface-server processes that serve: the children of a group, else the one process."""
    pids = {label: pid for label, pid in stack.processes().items() if label.startswith("interface-server")}
    return {k: v for k, v in pids.items() if k != "interface-server"} or pids


def bench_http(run: Run, stacks: dict[int, OursStack], results: dict) -> None:
    sizes: Sizes = run.sizes
    print(f"\n1. HTTP GET /, wrk -t{WRK_THREADS} -c{CONNECTIONS} --latency, {sizes.http_seconds} s a run,")
    print(f"   {sizes.http_rounds} round(s) per stack, taking turns")
    for stack in stacks.values():
        run_wrk(stack.port, 2, WRK_THREADS, CONNECTIONS, echo=False)  # warm-up
    runs: dict[int, list[dict]] = {n: [] for n in stacks}
    for rnd in range(sizes.http_rounds):
        order = list(stacks) if rnd % 2 == 0 else list(reversed(stacks))
        for n in order:
            pids = serving(stacks[n])
            before = cpu_of(pids)
            result = run_wrk(stacks[n].port, sizes.http_seconds, WRK_THREADS, CONNECTIONS, echo=False)
            after = cpu_of(pids)
            result["server_cpu"] = {k: after[k] - before[k] for k in after if k in before}
            runs[n].append(result)
            shares = sorted(result["server_cpu"].values(), reverse=True)
            total = sum(shares) or 1.0
            print(
                f"   --processes {n}: {result['rate']:,.0f} req/s, p50 {millis(result['p50'])},"
                f" p99 {millis(result['p99'])}, {result['bad']} errors; interface-server CPU"
                f" {total / sizes.http_seconds * 100:.0f}% of a core"
                + (f" (shares {' / '.join(f'{s / total:.0%}' for s in shares)})" if len(shares) > 1 else ""),
                flush=True,
            )
    summary = {}
    for n, done in runs.items():
        cpu = sum(sum(r["server_cpu"].values()) for r in done)
        summary[n] = {
            "rate": statistics.fmean(r["rate"] for r in done),
            "p99": statistics.fmean(r["p99"] for r in done),
            "bad": sum(r["bad"] for r in done),
            "server_cpu_per_request": cpu / sum(r["requests"] for r in done),
            "runs": done,
        }
    results["http"] = summary
    one, many = summary[min(stacks)], summary[max(stacks)]
    n = max(stacks)
    run.compare(f"HTTP req/s at {CONNECTIONS} clients, {n} processes (vs 1)", many["rate"], one["rate"], rate, None)
    run.compare(f"HTTP p99 at {CONNECTIONS} clients, {n} processes (vs 1)", many["p99"], one["p99"], millis, None)
    run.compare(
        f"interface-server CPU per request, {n} processes (vs 1)",
        many["server_cpu_per_request"],
        one["server_cpu_per_request"],
        lambda v: f"{v * 1e6:,.0f} us",
        None,
    )
    bad = sum(s["bad"] for s in summary.values())
    run.figure("HTTP errors or non-2xx", str(bad), "0", bad == 0)


def rate(value: float) -> str:
    return f"{value:,.0f} req/s"


def capacity(run: Run, n: int, stack: OursStack, command: str) -> dict:
    """The shootout's steps of `command` (broadcast or echo) against `stack`; its steps and final event."""
    sizes: shootout_bench.Sizes = run.sizes.shootout
    options = {
        "command": command,
        "initial-clients": sizes.initial_clients,
        "step-size": sizes.step_size,
        "limit-clients": sizes.limit_clients,
        "concurrent": sizes.concurrent,
        "sample-size": sizes.sample_size,
        "limit-percentile": shootout_bench.PERCENTILE,
        "limit-rtt-ms": shootout_bench.LIMIT_RTT_MS,
        "max-seconds": sizes.max_seconds,
    }
    print(f"\n   --processes {n}: {stack.describe()}", flush=True)
    print("   clients  p95 RTT  last p95  missing  loadgen CPU  server CPU  busiest process", flush=True)
    steps, done = [], {}
    for event in node_client(stack, run, options, timeout=sizes.max_seconds + 240):
        if event["event"] == "step":
            steps.append(event)
            busiest = event["busiest"]
            print(
                f"   {event['clients']:>7,}  {shootout_bench.ms(event['rtt']['p95']):>7}"
                f"  {shootout_bench.ms(event['last']['p95']):>8}  {event['missing']:>7}"
                f"  {event['loadgenCpuPct']:>10.0f}%  {event['serverCpuPct']:>9.0f}%"
                f"  {busiest['process']} {busiest['cpuPct']:.0f}%"
                + ("" if event["passed"] else "   <- over the limit"),
                flush=True,
            )
        elif event["event"] == "done":
            done = event
    print(f"   stopped: {done.get('reason')}; largest passing step {done.get('maxClients', 0):,} clients")
    return {"steps": steps, "done": done}


def bench_shootout(run: Run, stacks: dict[int, OursStack], results: dict, command: str) -> None:
    sizes: shootout_bench.Sizes = run.sizes.shootout
    part = "2" if command == "broadcast" else "3"
    print(
        f"\n{part}. websocket-shootout {command}: steps {sizes.initial_clients}+{sizes.step_size} up to"
        f" {sizes.limit_clients}, {sizes.concurrent} in flight, {sizes.sample_size} samples a step,"
        f" stop at p{shootout_bench.PERCENTILE} > {shootout_bench.LIMIT_RTT_MS} ms; one stack after the other"
    )
    found = {n: capacity(run, n, stack, command) for n, stack in stacks.items()}
    results["shootout" if command == "broadcast" else "echo"] = found
    one, many = min(stacks), max(stacks)
    best = {n: found[n]["done"].get("maxClients", 0) for n in stacks}
    if best[one]:
        run.compare(
            f"shootout {command} clients at p95 <= 500 ms, {many} processes (vs 1)",
            best[many],
            best[one],
            lambda v: f"{v:,.0f}",
            None,
        )
    for n in stacks:
        missing = sum(s["missing"] for s in found[n]["steps"])
        if command == "broadcast":
            run.figure(f"shootout broadcasts missing, {n} process(es)", str(missing), "0", missing == 0)
        good = [s for s in found[n]["steps"] if s["passed"]]
        if good:
            step = good[-1]
            run.figure(
                f"shootout {command} at {step['clients']:,} clients, {n} process(es): busiest interface-server process",
                f"{step['busiest']['process']} {step['busiest']['cpuPct']:.0f}% of a core;"
                f" load generator {step['loadgenCpuPct']:.0f}%, Redis {step['redisCpuPct']:.0f}%",
            )


def parse_args() -> argparse.Namespace:
    parser = benchmark_parser(__doc__, "5 s wrk runs and 100-300 shootout clients: a smoke run")
    parser.add_argument("--processes", type=int, default=2, help="the N measured against 1 (default 2)")
    parser.add_argument("--private-redis", action="store_true", help="start a redis-server of its own on a free port")
    parser.add_argument("--only", action="append", choices=["http", "shootout", "echo"], help="run only this part")
    parser.add_argument("--out", default=str(ROOT / "artifacts" / "processes.json"), help="results file (JSON)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    parts = args.only or ["http", "shootout", "echo"]
    if "http" in parts and not shutil.which("wrk"):
        print("wrk is not installed: the HTTP part needs it (apt-get install wrk)")
        return 2
    if args.processes < 2:
        print("--processes must be 2 or more (it is measured against 1)")
        return 2
    stop_on_signals()
    sizes = QUICK if args.quick else FULL
    limit = raise_fd_limit(sizes.shootout.limit_clients + 1000, "the largest shootout step")
    if {"shootout", "echo"} & set(parts):
        peer_env.ensure_node()
    private = start_redis(args)
    client = redis.Redis.from_url(args.redis_url)
    run = Run(args, sizes, f"procs{os.getpid()}:", client)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results: dict = {"date": stamp, "tree": tree_state(), "quick": args.quick, "cpus": os.cpu_count()}
    print(f"{load_average()} before the run (a shared {os.cpu_count()}-core machine: other work may run beside it)")
    print(f"measuring {results['tree']}")
    print(
        f"{stamp}; {'quick' if args.quick else 'full'} run; {os.cpu_count()} CPUs; open-files limit {limit};"
        f" Python {sys.version.split()[0]}; Redis {client.info('server')['redis_version']}",
        flush=True,
    )

    def work() -> None:
        stacks = {n: start(run, n) for n in (1, args.processes)}
        for n, stack in stacks.items():
            print(f"--processes {n}: {stack.describe()}", flush=True)
        if "http" in parts:
            bench_http(run, stacks, results)
        if "shootout" in parts:
            bench_shootout(run, stacks, results, "broadcast")
        if "echo" in parts:
            bench_shootout(run, stacks, results, "echo")
        results["load_after"] = os.getloadavg()[0]
        if results["load_after"] > (os.cpu_count() or 1):
            run.notes.append(
                f"the machine was busy (1-minute load average {results['load_after']:.1f} on {os.cpu_count()}"
                " CPUs at the end): a second process only helps when a core is free for it"
            )
        out = Path(args.out)
        write_results(out, results)
        print(f"\nresults: {out}")

    return execute(run, work, "1 process", lambda: teardown(client, private))


if __name__ == "__main__":
    raise SystemExit(main())
