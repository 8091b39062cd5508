"""WebSocket echo through a worker: this tree against another revision, in one run, message by message.

    python benchmarks/echo_ab_bench.py [--against REV] [--messages N] [--rounds R] [--workers W] [--quick]
        [--redis-url URL]

A change to the echo path (interface server, layer, worker) moves the echo by tens of microseconds,
less than what a shared machine's load moves it from one minute to the next. So both stacks run at
once: interface-server + W runworkers (--prefetch 4, the app of benchmarks/peerapp) from this working
tree ("this") and from `git archive REV` ("REV", default HEAD), one WebSocket each, the two taking
turns message by message (which one goes first alternates). Per round it prints p50/p90/p99 of each,
the ratio this/REV, and the CPU each side's interface server and workers spent per echo (from
/proc/PID/stat). Several rounds give the spread; a ratio inside it is no difference.

Every process started here is stopped by its pid at the end and the run's Redis keys deleted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from common import benchmark_parser, percentile, ws_connect

ROOT = Path(__file__).resolve().parents[1]
MESSAGE = "x" * 100
WARMUP = 200
START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Stack:
    """interface-server + runworkers of the tree at `root`, on keys of their own."""

    def __init__(self, name: str, root: Path, redis_url: str, workers: int) -> None:
        self.name = name
        self.prefix = f"echoab{os.getpid()}{name.replace('/', '_')}:"
        self.port = _free_port()
        env = dict(
            os.environ,
            PYTHONPATH=f"{root}{os.pathsep}{root / 'benchmarks'}",
            DJANGO_SETTINGS_MODULE="peerapp.settings",
            PEERAPP_STACK="ours",
            PEERAPP_PREFIX=self.prefix,
            PEERAPP_REDIS_URL=redis_url,
        )
        quiet = dict(cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = [sys.executable, "-m", "interface_server", "peerapp.asgi:channel_layer", "-p", str(self.port)]
        self.server = subprocess.Popen([*server, "-v", "0"], **quiet)
        worker = [sys.executable, "-m", "django", "runworker", "--prefetch", "4"]
        self.workers = [subprocess.Popen(worker, **quiet) for _ in range(workers)]

    def cpu(self) -> tuple[float, float]:
        return _cpu_seconds(self.server.pid), sum(_cpu_seconds(w.pid) for w in self.workers)

    def stop(self, redis_url: str) -> None:
        for proc in (self.server, *self.workers):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (self.server, *self.workers):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(self.prefix + "*"))
        if keys:
            client.delete(*keys)


async def _connect(stack: Stack):
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            return await ws_connect(f"ws://127.0.0.1:{stack.port}/ws/echo/").__aenter__()
        except OSError:
            if time.monotonic() > deadline or stack.server.poll() is not None:
                raise
            await asyncio.sleep(0.1)


async def _round(stacks: list[Stack], sockets: list, messages: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {s.name: [] for s in stacks}
    for i in range(messages):
        order = range(len(stacks)) if i % 2 else reversed(range(len(stacks)))
        for k in order:
            start = time.perf_counter()
            await sockets[k].send(MESSAGE)
            got = await sockets[k].recv()
            times[stacks[k].name].append(time.perf_counter() - start)
            if got != MESSAGE:
                raise RuntimeError(f"{stacks[k].name}: the echo came back as {got[:40]!r}")
    return times


async def _measure(stacks: list[Stack], messages: int, rounds: int) -> list[float]:
    sockets = [await _connect(s) for s in stacks]
    ratios = []
    try:
        await _round(stacks, sockets, WARMUP)
        for r in range(rounds):
            before = [s.cpu() for s in stacks]
            times = await _round(stacks, sockets, messages)
            after = [s.cpu() for s in stacks]
            print(f"round {r + 1} (load {os.getloadavg()[0]:.1f}):")
            for s, (s0, w0), (s1, w1) in zip(stacks, before, after, strict=True):
                pcts = ", ".join(f"p{p} {percentile(times[s.name], p) * 1e3:.3f} ms" for p in (50, 90, 99))
                cpu = f"CPU per echo: interface-server {(s1 - s0) / messages * 1e6:.0f} us"
                print(f"  {s.name:12} {pcts}; {cpu}, workers {(w1 - w0) / messages * 1e6:.0f} us")
            this, other = (times[s.name] for s in stacks)
            p50 = percentile(this, 50) / percentile(other, 50)
            p99 = percentile(this, 99) / percentile(other, 99)
            ratios.append(p50)
            print(f"  ratio this/{stacks[1].name}: p50 {p50:.2f}, p99 {p99:.2f}")
    finally:
        for ws in sockets:
            await ws.close()
    return ratios


def main() -> None:
    parser = benchmark_parser(__doc__, "200 messages x 2 rounds, 1 worker each (a smoke run)")
    parser.add_argument("--against", default="HEAD", help="the git revision to compare with (default HEAD)")
    parser.add_argument("--messages", type=int, default=2000, help="echoes per stack per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="runworker processes per stack")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.rounds, args.workers = 200, 2, 1
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs; this tree vs {args.against}")
    with tempfile.TemporaryDirectory(prefix="echo-ab-") as tmp:
        archive = subprocess.run(["git", "archive", args.against], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        stacks = [
            Stack("this", ROOT, args.redis_url, args.workers),
            Stack(args.against, Path(tmp), args.redis_url, args.workers),
        ]
        try:
            ratios = asyncio.run(_measure(stacks, args.messages, args.rounds))
        finally:
            for s in stacks:
                s.stop(args.redis_url)
    print(f"p50 ratio this/{args.against} per round: " + ", ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
    main()
