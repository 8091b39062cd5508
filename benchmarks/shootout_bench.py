"""The websocket-shootout (Hashrocket's `json` protocol, `websocket-bench broadcast`), ours beside Channels 4.

    python benchmarks/shootout_bench.py [--quick] [--plot] [--redis-url URL | --private-redis] [--stacks ours,channels4]
        [--command broadcast|echo]
        [--initial-clients N] [--step-size N] [--limit-clients N] [--concurrent N] [--sample-size N]

Serves benchmarks/peerapp's /shootout/ on each stack in turn, in one run (peer_stacks.py):
ours (interface-server + 2 runworkers: the consumer runs IN A WORKER, so every request and
every broadcast crosses the layer) and Channels 4 (daphne 4, async consumers in the server,
channels_redis). The protocol: `{"type":"echo","payload":P}` comes back to the sender;
`{"type":"broadcast","payload":P}` goes to every client as `{"type":"broadcast",...}`, then to
the sender as `{"type":"broadcastResult",...}`.

The load generator is Node's `ws` (benchmarks/shootout/client.mjs, installed by npm into
benchmarks/shootout/node_modules): steps of clients (--initial-clients, then --step-size more
each step, up to --limit-clients); --concurrent broadcasts in flight from random clients until
--sample-size round trips (send -> the sender's broadcastResult) are in; the run stops at the
first step whose p95 exceeds 500 ms. Beyond the original tool it reports, per step, missing
and extra broadcasts and the time until the LAST client had each broadcast, and the CPU of
the load generator beside the server's (all its processes, and the busiest one alone) and
Redis's over each sampling phase (percent of one core), to show the generator is not the
bottleneck.

Prints the largest client count at p95 <= 500 ms per stack and the ratio ours / Channels 4.
--quick: 100-300 clients in steps of 100 (under a minute). --plot writes docs/images/shootout.png
(matplotlib from the peer venv). The peers come from PyPI into ~/.cache/channels-core-benchmarks/venv-peers
(peer_env.py). Every process started here is stopped at the end and every Redis key under the
run's prefix deleted. Exits 0 unless something crashes; a missed target is marked MISSED.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import peer_env
import redis
from common import benchmark_parser, columns
from harness import ROOT, Run, Target, execute, load_average, raise_fd_limit, stop_on_signals
from peer_stacks import Daphne, OursStack, node_client, plot, start_redis, teardown, tree_state, write_results

LIMIT_RTT_MS = 500
PERCENTILE = 95
STACKS = {"ours": "ours (through a worker)", "channels4": "Channels 4 (in-process)"}


@dataclass(frozen=True)
class Sizes:
    initial_clients: int
    step_size: int
    limit_clients: int
    concurrent: int
    sample_size: int
    max_seconds: int  # per stack, a safety stop for the load generator


FULL = Sizes(initial_clients=250, step_size=250, limit_clients=10000, concurrent=4, sample_size=40, max_seconds=420)
QUICK = Sizes(initial_clients=100, step_size=100, limit_clients=300, concurrent=4, sample_size=20, max_seconds=20)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def run_stack(run: Run, name: str) -> dict:
    """Start `name`'s stack, run the load generator against it, stop it; its steps and final event."""
    sizes: Sizes = run.sizes
    prefix = f"{run.prefix}{name}:"
    side = OursStack(run, prefix) if name == "ours" else Daphne(run, prefix)
    print(f"\n{STACKS[name]}: {side.describe()}", flush=True)
    options = {
        "command": run.args.command,
        "initial-clients": sizes.initial_clients,
        "step-size": sizes.step_size,
        "limit-clients": sizes.limit_clients,
        "concurrent": sizes.concurrent,
        "sample-size": sizes.sample_size,
        "limit-percentile": PERCENTILE,
        "limit-rtt-ms": LIMIT_RTT_MS,
        "max-seconds": sizes.max_seconds,
    }
    steps: list[dict] = []
    done: dict = {}
    header = ["clients", "p50 RTT", "p95 RTT", "max RTT", "last p50", "last p95", "missing", "extra"]
    header += ["loadgen CPU", "server CPU", "busiest process", "its us/msg", "redis CPU"]
    print("  " + "  ".join(header), flush=True)
    for event in node_client(side, run, options, timeout=sizes.max_seconds + 240):
        if event["event"] == "step":
            steps.append(event)
            rtt, last = event["rtt"], event["last"]
            cells = [
                f"{event['clients']:,}",
                ms(rtt["p50"]),
                ms(rtt["p95"]),
                ms(rtt["max"]),
                ms(last["p50"]),
                ms(last["p95"]),
                str(event["missing"]),
                str(event["extra"]),
                f"{event['loadgenCpuPct']:.0f}%",
                f"{event['serverCpuPct']:.0f}%",
                f"{event['busiest']['process']} {event['busiest']['cpuPct']:.0f}%",
                f"{event['busiest']['usPerMessage']:.1f}",
                f"{event['redisCpuPct']:.0f}%",
            ]
            print("  " + "  ".join(cells) + ("" if event["passed"] else "   <- over the limit"), flush=True)
        elif event["event"] == "done":
            done = event
    side.stop()
    print(f"  stopped: {done.get('reason')}; largest passing step {done.get('maxClients', 0):,} clients")
    return {"name": name, "steps": steps, "done": done}


def passing(result: dict) -> dict | None:
    """The last step at p95 <= the limit, if any."""
    good = [s for s in result["steps"] if s["passed"]]
    return good[-1] if good else None


def report(run: Run, results: dict[str, dict]) -> None:
    ours, peer = results.get("ours"), results.get("channels4")
    if ours:
        best = ours["done"].get("maxClients", 0)
        if peer:
            base = peer["done"].get("maxClients", 0)
            if base:
                run.compare(
                    f"shootout clients at p{PERCENTILE} <= {LIMIT_RTT_MS} ms (vs Channels 4)",
                    best,
                    base,
                    lambda v: f"{v:,.0f}",
                    None if run.args.quick else Target(6, at_least=True),  # --quick stops both at 300
                )
            else:
                run.figure("shootout clients at p95 <= 500 ms (Channels 4 passed no step)", f"{best:,}")
        run.figure(
            f"shootout clients at p{PERCENTILE} <= {LIMIT_RTT_MS} ms, ours",
            f"{best:,}",
            ">= 5,000" if not run.args.quick else "-",
            best >= 5000 if not run.args.quick else None,
        )
    for name, result in results.items():
        who = "ours" if name == "ours" else "Channels 4"
        missing = sum(s["missing"] for s in result["steps"])
        extra = sum(s["extra"] for s in result["steps"])
        sent = sum(s["broadcasts"] * s["clients"] for s in result["steps"])
        run.figure(
            f"shootout broadcasts missing / extra, {who}",
            f"{missing} / {extra} of {sent:,}",
            "0 / 0" if name == "ours" else "-",
            missing == 0 and extra == 0 if name == "ours" else None,
        )
        step = passing(result)
        if step:
            run.figure(
                f"shootout at {step['clients']:,} clients, {who}: RTT p95 / last client p95",
                f"{ms(step['rtt']['p95'])} / {ms(step['last']['p95'])}",
            )
            run.figure(
                f"shootout at {step['clients']:,} clients, {who}: load generator / server / Redis CPU",
                f"{step['loadgenCpuPct']:.0f}% / {step['serverCpuPct']:.0f}% / {step['redisCpuPct']:.0f}%",
            )
            run.figure(
                f"shootout at {step['clients']:,} clients, {who}: busiest server process",
                f"{step['busiest']['process']} {step['busiest']['cpuPct']:.0f}% of a core,"
                f" {step['busiest']['usPerMessage']:.1f} us per message delivered",
            )
            if step["loadgenCpuPct"] > 80:
                run.notes.append(
                    f"the load generator used {step['loadgenCpuPct']:.0f}% of a CPU at {step['clients']:,} clients"
                    f" on {who}: it may be the bottleneck there"
                )
    a = ours["steps"][0] if ours and ours["steps"] else None
    b = peer["steps"][0] if peer and peer["steps"] else None
    if a and b and a["serverUsPerMessage"] > 0 and b["serverUsPerMessage"] > 0:  # /proc counts 10 ms ticks
        # CPU per message does not depend on the share of the CPU the scheduler gave each stack.
        run.compare(
            f"shootout server CPU per message delivered at {a['clients']:,} clients (vs Channels 4)",
            a["serverUsPerMessage"] * 1e-6,
            b["serverUsPerMessage"] * 1e-6,
            lambda v: f"{v * 1e6:.1f} us",
            None,
        )
    if ours and peer:
        # The two stacks side by side at each client count both reached.
        both = sorted({s["clients"] for s in ours["steps"]} & {s["clients"] for s in peer["steps"]})
        if both:
            rows = [["clients", "RTT p95 ours", "Channels 4", "ratio", "last p95 ours", "Channels 4", "ratio"]]
            by = {n: {r["name"]: s for r in (ours, peer) for s in r["steps"] if s["clients"] == n} for n in both}
            for n in both:
                a, b = by[n]["ours"], by[n]["channels4"]
                rows.append(
                    [
                        f"{n:,}",
                        ms(a["rtt"]["p95"]),
                        ms(b["rtt"]["p95"]),
                        f"{a['rtt']['p95'] / b['rtt']['p95']:.2f}",
                        ms(a["last"]["p95"]),
                        ms(b["last"]["p95"]),
                        f"{a['last']['p95'] / b['last']['p95']:.2f}" if a["last"]["p95"] and b["last"]["p95"] else "-",
                    ]
                )
            print("\nSide by side at the client counts both reached:")
            print("\n".join("  " + line for line in columns(rows)))


def parse_args() -> argparse.Namespace:
    parser = benchmark_parser(__doc__, "100-300 clients in steps of 100, under a minute")
    parser.add_argument("--plot", action="store_true", help="write docs/images/shootout.png")
    parser.add_argument("--stacks", default="ours,channels4", help="comma-separated: ours, channels4")
    parser.add_argument(
        "--command",
        choices=["broadcast", "echo"],
        default="broadcast",
        help="what each request is, as websocket-bench's subcommands (default broadcast; echo steps are short:"
        " raise --sample-size for CPU figures, which /proc counts in 10 ms ticks)",
    )
    parser.add_argument(
        "--private-redis",
        action="store_true",
        help="start a redis-server of its own on a free port (needs redis-server)",
    )
    parser.add_argument("--plot-dir", default=str(ROOT / "docs" / "images"), help="where --plot writes its PNGs")
    parser.add_argument("--out", default=str(ROOT / "artifacts" / "shootout.json"), help="results file (JSON)")
    for option in ("initial-clients", "step-size", "limit-clients", "concurrent", "sample-size"):
        parser.add_argument(f"--{option}", type=int, help="as websocket-bench's option of that name")
    args = parser.parse_args()
    args.stacks = [s.strip() for s in args.stacks.split(",") if s.strip()]
    unknown = set(args.stacks) - set(STACKS)
    if unknown:
        parser.error(f"--stacks: unknown {', '.join(sorted(unknown))}")
    return args


def main() -> int:
    args = parse_args()
    stop_on_signals()
    sizes = QUICK if args.quick else FULL
    for field in ("initial_clients", "step_size", "limit_clients", "concurrent", "sample_size"):
        if getattr(args, field) is not None:
            sizes = replace(sizes, **{field: getattr(args, field)})
    limit = raise_fd_limit(sizes.limit_clients + 1000, "the largest step")
    if "channels4" in args.stacks:
        peer_env.ensure_venv()
    peer_env.ensure_node()
    versions = peer_env.versions() if "channels4" in args.stacks else {}
    private = start_redis(args)
    client = redis.Redis.from_url(args.redis_url)
    run = Run(args, sizes, f"shootout{os.getpid()}:", client)
    print(f"{load_average()} before the run (a shared 2-core machine: other work may run beside it)")
    print(f"measuring {tree_state()}")
    print(
        f"{'quick' if args.quick else 'full'} run; {os.cpu_count()} CPUs; open-files limit {limit};"
        f" Python {sys.version.split()[0]}; Redis {client.info('server')['redis_version']}; peers {versions};"
        f" steps {sizes.initial_clients}+{sizes.step_size} up to {sizes.limit_clients}, {sizes.concurrent} in"
        f" flight, {sizes.sample_size} samples a step, stop at p{PERCENTILE} > {LIMIT_RTT_MS} ms",
        flush=True,
    )
    results: dict[str, dict] = {}

    def work() -> None:
        for name in args.stacks:
            results[name] = run_stack(run, name)
        report(run, results)
        out = write_results_file(args, sizes, versions, results)
        if args.plot:
            for path in plot("shootout", out, Path(args.plot_dir)):
                print(f"chart: {path}")

    return execute(run, work, "Channels 4", lambda: teardown(client, private))


def write_results_file(args: argparse.Namespace, sizes: Sizes, versions: dict, results: dict) -> os.PathLike:
    out = Path(args.out)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    write_results(
        out,
        {
            "date": stamp,
            "load": os.getloadavg()[1],  # 5-minute load average over the run, for the chart
            "tree": tree_state(),
            "sizes": sizes.__dict__,
            "versions": versions,
            "quick": args.quick,
            "stacks": results,
        },
    )
    print(f"results: {out}")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
