"""Broadcast fan-out: one consumer's group send to 1,000 and to 10,000 WebSockets of ONE interface-server process.

    python benchmarks/fanout_bench.py [--quick] [--redis-url URL | --private-redis] [--baseline TREE]
        [--sockets 1000,10000] [--broadcasts N] [--rounds N]

Serves benchmarks/peerapp's /shootout/ on our stack (peer_stacks.OursStack: one interface-server
process + 2 runworkers over Redis; the consumer runs in a worker, so each broadcast is a group send
through the layer that reaches the interface server as ONE element naming all its members, fanned
out there). The load generator is Node's `ws` (benchmarks/shootout/client.mjs, one process): it
connects N sockets, then one random client at a time sends the shootout's `broadcast`, --broadcasts
times, one in flight. Per size it prints the time until the LAST socket had each broadcast (p50,
p99, max), missing and extra messages (target: 0 / 0), the sender's round trip, and the CPU of the
load generator beside the interface server's and Redis's (percent of one core over the sampling
phase; the load generator must not be the bottleneck) and the interface server's CPU per message
delivered. Targets (issue 19): last socket p99 <= 30 ms at 1,000, <= 500 ms at 10,000.

--baseline TREE also runs the stack from another checkout of the project (e.g. `git worktree add` or
`git archive HEAD~1 | tar -x -C TREE`), the two taking turns --rounds times per size, so a change
is compared with what it replaces in one run on this noisy machine; the ratios (this tree /
baseline) are printed. --tree TREE measures another checkout as "this" (default: this one, with
whatever is uncommitted in it). --quick: 200 and 500 sockets, 20 broadcasts, under a minute. The open-files
limit is raised (children inherit it). Every process started here is stopped at the end and every
Redis key under the run's prefix deleted. Exits 0 unless something crashes; a missed target is
marked MISSED.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import peer_env
import redis
from common import benchmark_parser, millis
from harness import ROOT, Run, execute, load_average, raise_fd_limit, stop_on_signals
from peer_stacks import OursStack, node_client, start_redis, teardown, tree_state, write_results

TARGETS_MS = {1000: 30.0, 10000: 500.0}


@dataclass(frozen=True)
class Sizes:
    sockets: tuple[int, ...]
    broadcasts: int
    rounds: int


FULL = Sizes(sockets=(1000, 10000), broadcasts=50, rounds=2)
QUICK = Sizes(sockets=(200, 500), broadcasts=20, rounds=1)


def one_size(run: Run, tree: Path, label: str, n: int, broadcasts: int) -> dict:
    """Start the stack from `tree`, broadcast to `n` sockets, stop it: the load generator's step event."""
    side = OursStack(run, f"{run.prefix}{label}{n}:", root=tree)
    options = {"initial-clients": n, "limit-clients": n, "concurrent": 1, "sample-size": broadcasts}
    options |= {"limit-rtt-ms": 100000, "max-seconds": 0, "connect-concurrency": 200}
    step = None
    try:
        for event in node_client(side, run, options, timeout=600):
            if event["event"] == "step":
                step = event
            elif event["event"] == "done" and step is None:
                raise RuntimeError(f"{label}: the load generator stopped: {event['reason']}")
    finally:
        side.stop()
    assert step is not None
    s = step
    print(
        f"   {label:8} {n:>6,} sockets: last socket p50 {s['last']['p50']:.1f} ms, p99 {s['last']['p99']:.1f} ms,"
        f" max {s['last']['max']:.1f} ms; sender RTT p50 {s['rtt']['p50']:.1f} ms; missing {s['missing']},"
        f" extra {s['extra']}; CPU (% of a core): load generator {s['loadgenCpuPct']:.0f}%,"
        f" interface server {s['serverCpu'].get('interface-server', 0) / s['sampleWall'] * 100:.0f}%,"
        f" Redis {s['redisCpuPct']:.0f}%; interface server {server_us(s):.1f} us CPU per message delivered",
        flush=True,
    )
    return s


def server_us(step: dict) -> float:
    """The interface-server process's CPU per message it delivered (microseconds)."""
    return step["serverCpu"].get("interface-server", 0.0) / max(step["delivered"], 1) * 1e6


def merged(steps: list[dict]) -> dict:
    """The rounds of one tree and size, as one figure set: medians of the rounds, losses summed."""
    return {
        "p50": statistics.median(s["last"]["p50"] for s in steps),
        "p99": statistics.median(s["last"]["p99"] for s in steps),
        "max": max(s["last"]["max"] for s in steps),
        "missing": sum(s["missing"] for s in steps),
        "extra": sum(s["extra"] for s in steps),
        "expected": sum(s["broadcasts"] * s["clients"] for s in steps),
        "us": statistics.median(server_us(s) for s in steps),
        "loadgen": statistics.median(s["loadgenCpuPct"] for s in steps),
        "server": statistics.median(s["serverCpu"].get("interface-server", 0) / s["sampleWall"] * 100 for s in steps),
    }


def parse_args() -> argparse.Namespace:
    parser = benchmark_parser(__doc__, "200 and 500 sockets, 20 broadcasts, under a minute")
    parser.add_argument("--private-redis", action="store_true", help="start a redis-server of its own on a free port")
    parser.add_argument("--baseline", help="another checkout of the project to run beside this one, taking turns")
    parser.add_argument(
        "--tree", default=str(ROOT), help="the checkout measured as 'this' (default: this one, work tree included)"
    )
    parser.add_argument("--sockets", help="comma-separated socket counts (default 1000,10000; --quick 200,500)")
    parser.add_argument("--broadcasts", type=int, help="broadcasts per run (default 50; --quick 20)")
    parser.add_argument("--rounds", type=int, help="turns per tree and size (default 2; --quick 1)")
    parser.add_argument("--out", default=str(ROOT / "artifacts" / "fanout.json"), help="results file (JSON)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    sizes = QUICK if args.quick else FULL
    if args.sockets:
        sizes = Sizes(tuple(int(n) for n in args.sockets.split(",")), sizes.broadcasts, sizes.rounds)
    if args.broadcasts:
        sizes = Sizes(sizes.sockets, args.broadcasts, sizes.rounds)
    if args.rounds:
        sizes = Sizes(sizes.sockets, sizes.broadcasts, args.rounds)
    trees = {"this": Path(args.tree).resolve()}
    if args.baseline:
        trees["baseline"] = Path(args.baseline).resolve()
        if not (trees["baseline"] / "interface_server").is_dir():
            print(f"{trees['baseline']} is not a checkout of this project")
            return 2
    stop_on_signals()
    limit = raise_fd_limit(max(sizes.sockets) + 1000, "the largest broadcast")  # per process: server, client
    peer_env.ensure_node()
    private = start_redis(args)
    client = redis.Redis.from_url(args.redis_url)
    run = Run(args, sizes, f"fanout{os.getpid()}:", client)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"{load_average()} before the run (a shared 2-core machine: other work may run beside it)")
    this = tree_state() if trees["this"] == ROOT else str(trees["this"])
    print(f"measuring {this}" + (f" against {trees['baseline']}" if args.baseline else ""))
    print(
        f"{stamp}; {'quick' if args.quick else 'full'} run; {os.cpu_count()} CPUs; open-files limit {limit};"
        f" Python {sys.version.split()[0]}; Redis {client.info('server')['redis_version']};"
        f" {sizes.broadcasts} broadcasts one at a time per run, {sizes.rounds} round(s) per tree and size",
        flush=True,
    )

    def work() -> None:
        steps: dict[tuple[str, int], list[dict]] = {}
        for n in sizes.sockets:
            print(f"\nBroadcast to {n:,} WebSockets of one interface-server process", flush=True)
            for _ in range(sizes.rounds):
                for label, tree in trees.items():
                    steps.setdefault((label, n), []).append(one_size(run, tree, label, n, sizes.broadcasts))
        print(f"\n{load_average()} after the run")
        results = {"date": stamp, "tree": tree_state(), "quick": args.quick, "load": os.getloadavg()}
        results["runs"] = {f"{label} {n}": runs for (label, n), runs in steps.items()}
        results["figures"] = {f"{label} {n}": merged(steps[(label, n)]) for (label, n) in steps}
        write_results(Path(args.out), results)
        print(f"results: {args.out}")
        for n in sizes.sockets:
            figures = {label: merged(steps[(label, n)]) for label in trees}
            a = figures["this"]
            target = TARGETS_MS.get(n)
            for pct in ("p50", "p99"):
                if "baseline" in figures:
                    run.compare(
                        f"last of {n:,} {pct} (vs baseline)", a[pct] / 1e3, figures["baseline"][pct] / 1e3, millis, None
                    )
            run.figure(
                f"last of {n:,} p99 / max",
                f"{millis(a['p99'] / 1e3)} / {millis(a['max'] / 1e3)}",
                f"<= {target:.0f} ms" if target else "-",
                a["p99"] <= target if target else None,
            )
            run.figure(
                f"missing / extra of {n:,}",
                f"{a['missing']} / {a['extra']} of {a['expected']:,}",
                "0 / 0",
                a["missing"] == 0 and a["extra"] == 0,
            )
            if "baseline" in figures:
                run.compare(
                    f"server CPU per message, {n:,} (vs baseline)",
                    a["us"] * 1e-6,
                    figures["baseline"]["us"] * 1e-6,
                    lambda v: f"{v * 1e6:.1f} us",
                    None,
                )
            else:
                run.figure(f"server CPU per message, {n:,}", f"{a['us']:.1f} us")
            run.figure(
                f"CPU at {n:,}: load generator / interface server",
                f"{a['loadgen']:.0f}% / {a['server']:.0f}% of a core",
            )

    return execute(run, work, "baseline", lambda: teardown(client, private))


if __name__ == "__main__":
    raise SystemExit(main())
