"""What the server benchmarks (`interface_bench.py`, `e2e_bench.py`) share.

A `Run` collects the result rows and the child processes; `Child` is a
subprocess that dies with the benchmark and is stopped (and its log removed)
by `execute`, also on Ctrl-C or an exception; `RawPair` is the raw Redis
baseline (a ping pushed here, popped by another process and pushed back);
`run_wrk` drives `wrk` and reads its figures. Each benchmark file holds only
its scenarios.

    python benchmarks/harness.py raw-echo URL PING PONG [CLIENT_NAME]

runs the raw pair's second process (started by `RawPair`, not by hand).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import redis

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import terminate, ws_connect  # noqa: E402
from report import Row, Target, mark, print_table, print_verdict  # noqa: E402

from channels_core.test.processes import ChildProcess, free_port  # noqa: E402

__all__ = [
    "BENCH_DIR",
    "ROOT",
    "Child",
    "EchoTimes",
    "RawPair",
    "Run",
    "Target",
    "echo_against_raw_pair",
    "execute",
    "free_port",
    "http_get",
    "load_average",
    "raise_fd_limit",
    "run_wrk",
    "stop_on_signals",
]

RECV_TIMEOUT = 10.0  # seconds before a missing reply counts as lost


@dataclass
class Run:
    """One benchmark run: its options, sizes, key prefix, Redis client, children and result rows."""

    args: argparse.Namespace
    sizes: Any
    prefix: str
    client: redis.Redis
    env: dict[str, str] = field(default_factory=dict)  # for children started without an env of their own
    children: list[Child] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(self, row: Row) -> Row:
        """Keep `row` for the final table and print it now."""
        self.rows.append(row)
        print(
            f"  {row.measure}: {row.ours}"
            + (f" (baseline {row.baseline}, ratio {row.ratio})" if row.baseline != "-" else "")
            + f"  target {row.target}{mark(row)}",
            flush=True,
        )
        return row

    def compare(
        self, measure: str, ours: float, base: float, fmt: Callable[[float], str], target: Target | None
    ) -> Row:
        """A figure against its baseline; `target` bounds the ratio ours / baseline."""
        ratio = ours / base
        met = target.met(ratio) if target else None
        return self.row(Row(measure, fmt(ours), fmt(base), f"{ratio:.2f}", str(target or "-"), met))

    def figure(self, measure: str, ours: str, target: str = "-", met: bool | None = None) -> Row:
        """A figure without a baseline."""
        return self.row(Row(measure, ours, "-", "-", target, met))


class Child(ChildProcess):
    """A benchmark's subprocess: from the repository root, in its own group, dying with the benchmark."""

    def __init__(self, run: Run, label: str, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        super().__init__(
            argv, label=label, cwd=ROOT, env=env if env is not None else run.env, own_group=True, die_with_parent=True
        )
        run.children.append(self)

    def stop(self, timeout: float = 15.0, signo: int = signal.SIGTERM) -> int:
        code = super().stop(timeout, signo)
        if self.killed:
            print(f"  {self.label} (pid {self.pid}) ignored signal {signo} for {timeout:g}s: killed it")
        return code


def cleanup(run: Run, failed: bool) -> None:
    """Stop every child (showing the last output of any that failed) and delete the run's Redis keys."""
    for child in reversed(run.children):
        try:
            code = child.stop()
        except Exception as exc:
            print(f"  could not stop {child.label} (pid {child.pid}): {exc}")
            code = None
        output = child.output().strip()
        if (failed or code not in (0, None, -signal.SIGTERM)) and output:
            print(f"--- last output of {child.label} (pid {child.pid}, exit code {code}):")
            print("\n".join(output.splitlines()[-15:]))
        child.close()
    left = list(run.client.scan_iter(match=run.prefix + "*", count=1000))
    if left:
        run.client.unlink(*left)


def execute(run: Run, work: Callable[[], None], baseline_title: str, teardown: Callable[[], None]) -> int:
    """Run `work`, clean up whatever happens, then print the table, the notes and the verdict.

    Returns the benchmark's exit code: 0, or 130 when interrupted (Ctrl-C or SIGTERM).
    """
    failed = True
    try:
        work()
        failed = False
    except KeyboardInterrupt:
        print("\nInterrupted: stopping every process started here", flush=True)
        return 130
    finally:
        try:
            cleanup(run, failed)
        finally:
            teardown()
    print_table(run.rows, baseline_title)
    print(f"\n{load_average()} after the run")
    for note in run.notes:
        print(f"NOTE: {note}")
    print_verdict(run.rows)
    return 0


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the benchmark as KeyboardInterrupt does, so `execute` cleans up."""
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)  # also when started with SIGINT ignored; asyncio leaves it alone


def load_average() -> str:
    return f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min)"


def raise_fd_limit(wanted: int, needed_by: str) -> str:
    """Raise the open-files limit to its hard limit (children inherit it); warn if that is below `wanted`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        print(f"WARNING: open-files limit {soft} < {wanted}: {needed_by} may fail (raise ulimit -n)")
    return "unlimited" if soft == resource.RLIM_INFINITY else str(soft)


# -- the raw Redis pair -------------------------------------------------------------------------------


class RawPair:
    """The raw Redis floor for a message and its reply: two hops, as through a layer and back.

    This process LPUSHes a ping; a second process BLPOPs it and LPUSHes a pong
    of the same size carrying the monotonic time the ping arrived (the clock is
    shared between processes), which this process BLPOPs. `round_trip()`
    returns (one way A->B, round trip A->B->A).
    """

    def __init__(self, run: Run, size: int, name: str | None = None, partner_name: str | None = None) -> None:
        url = run.args.redis_url
        self.ping, self.pong = run.prefix + "raw:ping", run.prefix + "raw:pong"
        self.value = b"x" * size
        argv = [sys.executable, __file__, "raw-echo", url, self.ping, self.pong]
        argv += [partner_name] if partner_name else []
        self.partner = Child(run, "raw-echo", argv, dict(os.environ))
        self.client = redis.Redis.from_url(url, client_name=name)

    def round_trip(self) -> tuple[float, float]:
        start = time.perf_counter()
        self.client.lpush(self.ping, self.value)
        got = self.client.blpop([self.pong], timeout=RECV_TIMEOUT)
        end = time.perf_counter()
        if got is None or len(got[1]) != len(self.value):
            raise RuntimeError(f"the raw pair's pong came back as {got!r}")
        return float(got[1]) - start, end - start

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.lpush(self.ping, b"stop")
        self.client.close()
        self.partner.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class EchoTimes:
    """Seconds per message: the WebSocket echo's round trips and the raw pair's one-way times and round trips."""

    echo: list[float] = field(default_factory=list)
    raw_one_way: list[float] = field(default_factory=list)
    raw_round_trip: list[float] = field(default_factory=list)


async def echo_against_raw_pair(raw: RawPair, ws_url: str, count: int, warmup: int, size: int) -> EchoTimes:
    """`count` sequential `size`-byte texts echoed over one WebSocket, each followed by one raw pair round trip.

    Taking turns message by message, both see the same machine load; `warmup`
    rounds of each come first and are not counted.
    """
    times = EchoTimes()
    async with ws_connect(ws_url) as ws:

        async def round_trip(i: int) -> float:
            text = f"{i}:".ljust(size, "x")
            start = time.perf_counter()
            await ws.send(text)
            got = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
            took = time.perf_counter() - start
            if got != text:
                raise RuntimeError(f"message {i} came back as {got[:40]!r}")
            return took

        for i in range(warmup):
            await round_trip(-i - 1)
            raw.round_trip()
        for i in range(count):
            times.echo.append(await round_trip(i))
            one_way, both = raw.round_trip()
            times.raw_one_way.append(one_way)
            times.raw_round_trip.append(both)
    return times


def run_raw_echo(url: str, ping: str, pong: str, name: str | None = None) -> None:
    """The raw pair's second process: BLPOP a ping, LPUSH back the time it arrived, padded to the ping's size."""
    parent = os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    client = redis.Redis.from_url(url, client_name=name)
    try:
        while os.getppid() == parent:
            got = client.blpop([ping], timeout=1)
            arrived = time.perf_counter()
            if got is None:
                continue
            if got[1] == b"stop":
                break
            client.lpush(pong, repr(arrived).encode().ljust(len(got[1]), b" "))
    finally:
        client.close()


# -- HTTP ---------------------------------------------------------------------------------------------


def http_get(port: int, path: str = "/") -> tuple[int, bytes, bool]:
    """One keep-alive GET: status, body, and whether the server closed the connection after it."""
    with socket.create_connection(("127.0.0.1", port), timeout=RECV_TIMEOUT) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
        while length and len(body) < int(length.group(1)) and (chunk := sock.recv(65536)):
            body += chunk
        closes = re.search(rb"\r\nconnection:\s*close", head, re.I) is not None
    return int(head.split()[1]), body, closes


_WRK_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def run_wrk(port: int, seconds: int, threads: int, connections: int, echo: bool = True) -> dict:
    """`wrk --latency` on GET / for `seconds`: requests, rate, p50, p99 (seconds) and errors or non-2xx."""
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
        f"http://127.0.0.1:{port}/",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    if echo:
        print("    " + "\n    ".join(out.rstrip().splitlines()[2:]))
    found = re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    lat = {int(p): float(v) * _WRK_UNITS[u] for p, v, u in found}
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "client": f"wrk -t{threads} -c{connections}",
        "requests": int(done.group(1)),
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": lat[50],
        "p99": lat[99],
        "bad": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, errors.groups())) if errors else 0),
    }


if __name__ == "__main__" and sys.argv[1:2] == ["raw-echo"]:
    run_raw_echo(*sys.argv[2:6])
