"""Benchmark a flooding WebSocket client against everyone else's latency.

    python benchmarks/flood_bench.py [--quick] [--redis-url URL] [--rounds N] [--frames N]

Starts the echo app of `interface_bench.py` (one process reading the layer
with `receive_batch`) and `python -m interface_server` on a layer with the
default capacity (100 per channel, so the flood fills `websocket.receive`),
then runs, in turns in the same run, QUIET phases (5 clients, each sending a
100-byte message and waiting for its echo, 10 ms apart) and FLOOD phases (the
same 5 clients while one more client, in a process of its own, writes N small
frames as fast as its socket takes them, reading its echoes meanwhile). Prints the 5 clients' echo
p50/p99 in each kind of phase and the difference (target: p99 rises by at
most 5 ms), and what happened to the flooding client (echoes received, time,
closed or not: it should be slowed, never closed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

import redis
from common import benchmark_parser, millis, percentile, ws_connect
from harness import Child, Run, execute, load_average, stop_on_signals
from interface_bench import Server, start_echo_app
from interface_bench_layer import make_layer

LAYER_OPTIONS = {"capacity": 100}  # the default: a flood fills websocket.receive
PROBES = 5
PROBE_PAUSE = 0.010
MESSAGE_SIZE = 100


class Sizes:
    def __init__(self, rounds: int, frames: int, quiet_seconds: float) -> None:
        self.rounds = rounds
        self.frames = frames
        self.quiet_seconds = quiet_seconds


FULL = Sizes(rounds=3, frames=10_000, quiet_seconds=3.0)
QUICK = Sizes(rounds=2, frames=3_000, quiet_seconds=1.5)


async def probe(url: str, cid: int, phase: list[str], times: dict[str, list[float]], stop: asyncio.Event) -> None:
    """Echo round trips, one at a time, each recorded under the phase it started in."""
    async with ws_connect(url) as ws:
        seq = 0
        while not stop.is_set():
            seq += 1
            text = f"{cid}:{seq}:".ljust(MESSAGE_SIZE, "x")
            kind = phase[0]
            started = time.perf_counter()
            await ws.send(text)
            got = await asyncio.wait_for(ws.recv(), 30)
            elapsed = time.perf_counter() - started
            if got != text:
                raise AssertionError(f"probe {cid}: sent {text[:12]!r}, got {got[:12]!r}")
            if kind == phase[0] and kind in times:
                times[kind].append(elapsed)
            await asyncio.sleep(PROBE_PAUSE)


async def flood(url: str, frames: int, start_at: float = 0.0) -> dict:
    """Write `frames` small frames as fast as the socket takes them (from `start_at`, epoch); read the echoes."""
    async with ws_connect(url) as ws:
        received = 0
        await asyncio.sleep(max(0.0, start_at - time.time()))

        async def read() -> None:
            nonlocal received
            while received < frames:
                await asyncio.wait_for(ws.recv(), 60)
                received += 1

        reader = asyncio.create_task(read())
        started = time.perf_counter()
        for i in range(frames):
            await ws.send(f"f{i}")
        written = time.perf_counter() - started
        try:
            await reader
        except Exception as exc:
            return {"received": received, "closed": ws.close_code, "error": repr(exc), "seconds": 0, "written": 0}
        return {
            "received": received,
            "closed": ws.close_code,
            "seconds": time.perf_counter() - started,
            "written": written,
        }


async def flood_in_child(run: Run, url: str, frames: int, phase: list[str]) -> dict:
    """The flooding client in a process of its own, so its echoes do not hold up the probes' event loop.

    It starts (and connects) during an unmeasured pause, then floods at an agreed time: the FLOOD
    phase measures the flood, not a Python interpreter starting.
    """
    phase[0] = "pause"
    start_at = time.time() + 1.5
    argv = [sys.executable, __file__, "--role", "flood", "--url", url, "--frames", str(frames)]
    child = Child(run, "flooder", [*argv, "--start-at", repr(start_at)])
    await asyncio.sleep(max(0.0, start_at - time.time()))
    phase[0] = "flood"
    while child.poll() is None:
        await asyncio.sleep(0.02)
    phase[0] = "pause"
    for line in reversed(child.output().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"the flooding client failed: {child.output()[-2000:]}")


async def scenario(run: Run, server: Server) -> None:
    sizes = run.sizes
    phase = ["warmup"]
    times: dict[str, list[float]] = {"quiet": [], "flood": []}
    stop = asyncio.Event()
    probes = [asyncio.create_task(probe(server.ws_url, cid, phase, times, stop)) for cid in range(PROBES)]
    await asyncio.sleep(1.0)
    floods = []
    for r in range(sizes.rounds):
        phase[0] = "quiet"
        await asyncio.sleep(sizes.quiet_seconds)
        result = await flood_in_child(run, server.ws_url, sizes.frames, phase)
        floods.append(result)
        print(
            f"  round {r + 1}: flooding client wrote {sizes.frames:,} frames in {result['written']:.2f} s,"
            f" got {result['received']:,} echoes in {result['seconds']:.2f} s, close code {result['closed']}",
            flush=True,
        )
    phase[0] = "done"
    stop.set()
    await asyncio.gather(*probes)
    quiet, flooded = times["quiet"], times["flood"]
    q50, q99, f50, f99 = (
        percentile(quiet, 50),
        percentile(quiet, 99),
        percentile(flooded, 50),
        percentile(flooded, 99),
    )
    print(
        f"\n  {PROBES} other clients: {len(quiet)} echoes without a flood, {len(flooded)} during floods"
        f"\n  without: p50 {millis(q50)}, p99 {millis(q99)}; during: p50 {millis(f50)}, p99 {millis(f99)}"
        f"\n  difference: p50 {millis(f50 - q50)}, p99 {millis(f99 - q99)}",
        flush=True,
    )
    run.figure("others' echo p50 without / during a flood", f"{millis(q50)} / {millis(f50)}")
    run.figure("others' echo p99 without / during a flood", f"{millis(q99)} / {millis(f99)}")
    run.figure("others' echo p99 rise during a flood", millis(f99 - q99), "<= 5 ms", f99 - q99 <= 0.005)
    total = sum(f["received"] for f in floods)
    closed = sum(1 for f in floods if f["closed"] is not None)
    wanted = sizes.frames * sizes.rounds
    run.figure(
        "flooding client: echoes received / closed by the server",
        f"{total:,}/{wanted:,} / {closed}",
        f"{wanted:,}/{wanted:,} / 0",
        total == wanted and closed == 0,
    )
    rate = [f["received"] / f["seconds"] for f in floods if f["seconds"]]
    if rate:
        run.figure("flooding client: echoes/s (slowed, not cut)", f"{min(rate):,.0f}-{max(rate):,.0f}")


async def run_all(run: Run) -> None:
    app = start_echo_app(run)
    server = Server(run, LAYER_OPTIONS)
    print(f"interface-server pid {server.pid} on port {server.port}; echo app pid {app.pid}", flush=True)
    await scenario(run, server)
    server.stop()
    lines = [line for line in server.output().splitlines() if line.strip()]
    if lines:
        print(f"  interface-server logged {len(lines)} line(s) at -v 0; first ones:")
        for line in lines[:10]:
            print(f"    {line}")
    app.stop()


def main() -> int:
    parser = benchmark_parser(__doc__, "fewer, shorter rounds")
    parser.add_argument("--rounds", type=int, help="quiet + flood rounds (default 3, quick 2)")
    parser.add_argument("--frames", type=int, help="frames per flood (default 10,000, quick 3,000)")
    parser.add_argument("--capacity", type=int, default=100, help="the layer's channel capacity (default 100)")
    # start_echo_app passes these on to the echo app.
    parser.set_defaults(app_read="batch")
    parser.add_argument("--role", choices=["main", "flood"], default="main", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "flood":
        print(json.dumps(asyncio.run(flood(args.url, args.frames, args.start_at))), flush=True)
        return 0
    LAYER_OPTIONS["capacity"] = args.capacity
    stop_on_signals()
    sizes = QUICK if args.quick else FULL
    sizes = Sizes(args.rounds or sizes.rounds, args.frames or sizes.frames, sizes.quiet_seconds)
    prefix = f"fbench{os.getpid()}:"
    client = redis.Redis.from_url(args.redis_url, client_name="fbench-main")
    layer = make_layer(args.redis_url, prefix, "fbench-main", LAYER_OPTIONS)
    run = Run(args, sizes, prefix, client)
    print(f"{load_average()} before the run; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(
        f"Redis {client.info('server')['redis_version']} at {args.redis_url}, key prefix {prefix!r},"
        f" {sizes.rounds} rounds of {sizes.frames:,} flood frames; layer {LAYER_OPTIONS}; {os.cpu_count()} CPUs",
        flush=True,
    )
    layer.flush()

    def teardown() -> None:
        layer.flush()
        layer.close()
        client.close()

    return execute(run, lambda: asyncio.run(run_all(run)), "baseline", teardown)


if __name__ == "__main__":
    raise SystemExit(main())
