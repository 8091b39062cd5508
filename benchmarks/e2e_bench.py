"""End-to-end benchmark: the Django test project through interface-server + runworker, against gunicorn.

    python benchmarks/e2e_bench.py [--quick] [--redis-url URL] [--rounds N] [--only http|echo|broadcast]
        [--layer redis|ipc|rabbitmq|URL] [--amqp-url URL]

Starts, in one run, with a fresh migrated SQLite copy and a key prefix of its own:

  side (a)  `python -m interface_server tests.project.asgi:channel_layer` + 2 separate
            `python -m django runworker` processes over Redis (the project's settings,
            i.e. the default layer configuration), or with `--layer` over the IPC or
            RabbitMQ layer (a settings module that picks the layer by URL, as the
            example app's `$CHANNEL_LAYER_URL` does; layer_kinds.py) with the layer's
            default configuration;
  side (b)  `gunicorn -w 2 -k sync` serving the same project through
            benchmarks/e2e_wsgi.py (skipped, with a message, when gunicorn is not importable);

and measures:

1. HTTP GET / (the view returns "OK") with `wrk -t2 -c50 --latency` (50 keep-alive
   connections; gunicorn's sync workers close the connection after each response, so
   its clients reconnect: that is how sync gunicorn serves), the two sides taking turns
   (ours, gunicorn, then gunicorn, ours, ...) after a short warm-up of each. Prints
   requests/s and p50/p99 of each run, their means, and the ratios ours/gunicorn; also
   the CPU each process spent per request (from /proc), to show where the time goes;
2. WebSocket echo round trip through the Django consumer at /ws/echo/, 1 client,
   1,000 sequential 100-byte messages, taking turns with a raw Redis pair (this process
   LPUSHes a ping, a second process BLPOPs it and LPUSHes a pong with the time it
   got the ping, this process BLPOPs the pong): the pair's ONE-WAY time A->B (one
   LPUSH->BLPOP hop, measured on the shared monotonic clock) and its ROUND TRIP
   (two hops) are both printed; the target compares the echo's round trip p50 with
   the pair's ROUND TRIP p50 (the echo also crosses Redis twice);
3. Group broadcast to 1,000 WebSockets connected to /notes/ (their consumer joins
   Group("notes") on connect): 20 rounds of a broadcast sent by a consumer (POST
   /notes/add/: the view, run by a runworker, saves a Note whose save() does
   Group("notes").send), timed from the moment the POST is written until the LAST
   of the 1,000 clients has the message; interleaved with 20 rounds where the
   benchmark process itself calls Group.send on a layer built from the same settings
   (labelled "sent by the benchmark process, not a consumer"), to separate the fan-out
   from the request that triggers it. Counts messages lost, duplicated or unexpected.

The raw Redis pair of part 2 is Redis whichever layer is measured (the echo's target
applies to the Redis layer only); `layer_bench.py --echo` puts the layers' echoes side by
side, each against its own broker's floor.

--quick shrinks everything. Every process started here is stopped at the end (also on
Ctrl-C or an exception; they die with this process if it is killed), and every Redis
key, RabbitMQ queue and /dev/shm file under the run's prefix is deleted. Exits 0 unless something crashes; a missed
target is marked MISSED.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import layer_kinds
import redis
from common import benchmark_parser, millis, percentile, ws_connect
from harness import (
    BENCH_DIR,
    ROOT,
    Child,
    RawPair,
    Run,
    Target,
    echo_against_raw_pair,
    execute,
    free_port,
    http_get,
    load_average,
    raise_fd_limit,
    run_wrk,
    stop_on_signals,
)

from channels_core.layers.layer_url import kind_of
from channels_core.test.processes import child_pids, cpu_seconds

SETTINGS = "tests.project.settings"
LAYER_PATH = "tests.project.asgi:channel_layer"
WORKERS = 2
# Fast view, so each worker may take up to 4 waiting requests per read (`runworker --prefetch`).
WORKER_ARGS = ["--prefetch", "4"]
HTTP_CONNECTIONS = 50
WRK_THREADS = 2
MESSAGE_SIZE = 100
WARMUP = 50  # WebSocket echoes and raw pings before the measured ones
RECV_TIMEOUT = 10.0
START_TIMEOUT = 30.0
CONNECT_CONCURRENCY = 50  # WebSocket handshakes in flight while connecting the /notes/ clients
BROADCAST_TIMEOUT = 10.0  # seconds a round waits for the last client before counting the rest lost
GROUP = "notes"


@dataclass(frozen=True)
class Sizes:
    http_seconds: int
    http_warmup: int
    http_rounds: int
    echo_messages: int
    sockets: int
    broadcasts: int


FULL = Sizes(http_seconds=10, http_warmup=2, http_rounds=2, echo_messages=1000, sockets=1000, broadcasts=20)
QUICK = Sizes(http_seconds=3, http_warmup=1, http_rounds=1, echo_messages=200, sockets=200, broadcasts=5)


def rate(value: float) -> str:
    return f"{value:,.0f} req/s"


# -- child processes ---------------------------------------------------------------------------------


class Side:
    """One way of serving the project: a port and the processes whose CPU is accounted."""

    name: str
    port: int

    def processes(self) -> dict[str, int]:
        raise NotImplementedError


class Ours(Side):
    name = "ours"

    def __init__(self, run: Run) -> None:
        self.port = free_port()
        self.server = Child(
            run,
            "interface-server",
            [sys.executable, "-m", "interface_server", LAYER_PATH, "-p", str(self.port), "-v", "0"],
        )
        self.workers = [
            Child(run, f"runworker-{i + 1}", [sys.executable, "-m", "django", "runworker", *WORKER_ARGS])
            for i in range(WORKERS)
        ]
        self.server.wait_for_port(self.port, timeout=START_TIMEOUT)
        for worker in self.workers:
            worker.wait_for("Listening on channels", START_TIMEOUT)

    def processes(self) -> dict[str, int]:
        return {"interface-server": self.server.pid, **{w.label: w.pid for w in self.workers}}


class Gunicorn(Side):
    name = "gunicorn"

    def __init__(self, run: Run) -> None:
        from gunicorn.config import KNOWN_SETTINGS

        self.port = free_port()
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            str(WORKERS),
            "-k",
            "sync",
            "-b",
            f"127.0.0.1:{self.port}",
            "--log-level",
            "warning",
        ]
        if any("--no-control-socket" in (s.cli or []) for s in KNOWN_SETTINGS):
            argv.append("--no-control-socket")  # gunicorn >= 24 would otherwise create ~/.gunicorn/gunicorn.ctl
        self.master = Child(run, "gunicorn", [*argv, "e2e_wsgi:application"])
        self.master.wait_for_port(self.port, timeout=START_TIMEOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while len(sorted(child_pids(self.master.pid))) < WORKERS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not boot {WORKERS} workers:\n{self.master.output()}")
            time.sleep(0.05)

    def processes(self) -> dict[str, int]:
        found = {"gunicorn master": self.master.pid}
        for i, pid in enumerate(sorted(child_pids(self.master.pid))):
            found[f"gunicorn worker {i + 1}"] = pid
        return found


def redis_pid(client: redis.Redis) -> int | None:
    """The Redis server's pid, if it runs on this machine (so its CPU can be read)."""
    with contextlib.suppress(Exception):
        pid = int(client.info("server")["process_id"])
        if "redis" in Path(f"/proc/{pid}/comm").read_text():
            return pid
    return None


# -- 1: HTTP ----------------------------------------------------------------------------------------------


def measure_side(side: Side, seconds: int, redis_server: int | None) -> dict:
    """One wrk run against `side`, with the CPU every process involved spent during it."""
    pids = dict(side.processes())
    if redis_server is not None:
        pids["redis-server"] = redis_server
    before = {label: cpu_seconds(pid) for label, pid in pids.items()}
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_wrk(side.port, seconds, WRK_THREADS, HTTP_CONNECTIONS)
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {}
    for label, pid in pids.items():
        now = cpu_seconds(pid)
        if now is not None and before[label] is not None:
            cpu[label] = now - before[label]
    cpu["wrk"] = (wrk_after.ru_utime + wrk_after.ru_stime) - (wrk_before.ru_utime + wrk_before.ru_stime)
    result["cpu"] = cpu
    return result


def print_cpu(name: str, results: list[dict]) -> None:
    requests = sum(r["requests"] for r in results)
    labels = list(dict.fromkeys(label for r in results for label in r["cpu"]))
    total_wall = sum(r["seconds"] for r in results)
    parts = []
    serving = 0.0
    for label in labels:
        used = sum(r["cpu"].get(label, 0.0) for r in results)
        if label not in ("wrk", "redis-server") or name == "ours" and label == "redis-server":
            serving += used
        parts.append(f"{label} {used / requests * 1e6:,.0f} us/req ({used / total_wall * 100:.0f}% of a CPU)")
    print(f"  CPU per request, {name}: " + "; ".join(parts))
    print(
        f"  serving CPU per request, {name} (without wrk{'' if name == 'ours' else ' and Redis'}):"
        f" {serving / requests * 1e6:,.0f} us -> at most {requests / serving:,.0f} req/s per fully busy CPU"
    )


def bench_http(run: Run, ours: Ours, gunicorn: Gunicorn | None) -> None:
    sizes = run.sizes
    sides: list[Side] = [ours] + ([gunicorn] if gunicorn else [])
    print(
        f"\n1. HTTP GET / with wrk -t{WRK_THREADS} -c{HTTP_CONNECTIONS} -d{sizes.http_seconds}s --latency,"
        f" {sizes.http_rounds} round(s) per side, taking turns"
        + ("" if gunicorn else " (ours only: gunicorn is not importable)"),
        flush=True,
    )
    for side in sides:
        status, body, closes = http_get(side.port)
        if (status, body) != (200, b"OK"):
            raise RuntimeError(f"{side.name}: GET / answered {status} {body[:200]!r}, not 200 'OK'")
        if closes:
            print(
                f"  {side.name} answers a keep-alive request with `Connection: close`: wrk reconnects for every"
                " request on that side (sync gunicorn workers do not keep connections alive)"
            )
    for side in sides:
        print(f"  warm-up {side.name} ({sizes.http_warmup} s)", flush=True)
        run_wrk(side.port, sizes.http_warmup, WRK_THREADS, HTTP_CONNECTIONS, echo=False)
    redis_server = redis_pid(run.client) if run.args.layer == "redis" else None
    results: dict[str, list[dict]] = {side.name: [] for side in sides}
    for rnd in range(sizes.http_rounds):
        order = sides if rnd % 2 == 0 else list(reversed(sides))
        for side in order:
            print(f"  round {rnd + 1}, {side.name} (port {side.port}):", flush=True)
            result = measure_side(side, sizes.http_seconds, redis_server)
            result["seconds"] = sizes.http_seconds
            results[side.name].append(result)
            print(
                f"  -> {rate(result['rate'])}, p50 {millis(result['p50'])}, p99 {millis(result['p99'])},"
                f" {result['bad']} errors or non-2xx",
                flush=True,
            )
    for side in sides:
        print_cpu(side.name, results[side.name])
    if redis_server is None:
        print(f"  (the {run.args.layer} layer's broker, if any, is not accounted: its CPU is not in these figures)")

    def mean(name: str, key: str) -> float:
        return statistics.fmean(r[key] for r in results[name])

    bad = sum(r["bad"] for r in results["ours"])
    total = sum(r["requests"] for r in results["ours"])
    how = f"mean of {sizes.http_rounds} runs"
    if gunicorn:
        run.compare(
            f"HTTP req/s, {how} (vs gunicorn)",
            mean("ours", "rate"),
            mean("gunicorn", "rate"),
            rate,
            Target(0.5, at_least=True),
        )
        run.compare("HTTP p50 (vs gunicorn)", mean("ours", "p50"), mean("gunicorn", "p50"), millis, Target(3))
        run.compare("HTTP p99 (vs gunicorn)", mean("ours", "p99"), mean("gunicorn", "p99"), millis, None)
        gbad = sum(r["bad"] for r in results["gunicorn"])
        gtotal = sum(r["requests"] for r in results["gunicorn"])
        print(f"  gunicorn: {gbad} errors or non-2xx of {gtotal:,} requests")
    else:
        run.figure(f"HTTP req/s, {how} (gunicorn skipped)", rate(mean("ours", "rate")), ">= 0.5x gunicorn", None)
        run.figure("HTTP p50 (gunicorn skipped)", millis(mean("ours", "p50")), "<= 3x gunicorn", None)
        run.figure("HTTP p99", millis(mean("ours", "p99")))
    run.figure("HTTP errors or non-2xx (ours)", f"{bad} of {total:,}", "0", bad == 0)


# -- 2: WebSocket echo against the raw Redis pair ----------------------------------------------------------


async def bench_echo(run: Run, ours: Ours) -> None:
    n = run.sizes.echo_messages
    print(
        f"\n2. WebSocket echo through the Django consumer at /ws/echo/, 1 client x {n:,} sequential"
        f" {MESSAGE_SIZE}-byte messages, taking turns with a raw Redis LPUSH/BLPOP pair",
        flush=True,
    )
    with RawPair(run, MESSAGE_SIZE) as raw:
        times = await echo_against_raw_pair(raw, f"ws://127.0.0.1:{ours.port}/ws/echo/", n, WARMUP, MESSAGE_SIZE)
    ours_rtt, one_way, raw_rtt = times.echo, times.raw_one_way, times.raw_round_trip
    p50, p99 = percentile(ours_rtt, 50), percentile(ours_rtt, 99)
    print(
        f"  raw pair ONE WAY A->B (LPUSH -> BLPOP, one hop): p50 {millis(percentile(one_way, 50))},"
        f" p99 {millis(percentile(one_way, 99))}"
    )
    print(
        f"  raw pair ROUND TRIP A->B->A (two hops): p50 {millis(percentile(raw_rtt, 50))},"
        f" p99 {millis(percentile(raw_rtt, 99))}"
    )
    print(f"  ours, echo round trip: p50 {millis(p50)}, p99 {millis(p99)}, max {millis(max(ours_rtt))}")
    print(
        f"  ratio of our p50 to the ONE-WAY p50: {p50 / percentile(one_way, 50):.2f} (for reference only);"
        " baseline used for the target: the raw pair's ROUND TRIP, as the echo crosses Redis twice"
        " (websocket.receive to a worker, the reply back to the server)"
    )
    on = "" if run.args.layer == "redis" else f" on {run.args.layer}"
    target = Target(4) if run.args.layer == "redis" else None  # the pair is Redis's floor, not another broker's
    run.compare(f"WS echo RTT p50{on} (vs raw Redis pair RTT p50)", p50, percentile(raw_rtt, 50), millis, target)
    run.compare(f"WS echo RTT p99{on} (vs raw Redis pair RTT p99)", p99, percentile(raw_rtt, 99), millis, None)
    run.figure("raw pair one way A->B p50 (info)", millis(percentile(one_way, 50)))


# -- 3: group broadcast to many sockets -----------------------------------------------------------------------


@dataclass
class Round:
    expected: int
    started: float = 0.0
    first: float | None = None
    last: float | None = None
    received: int = 0
    duplicates: int = 0
    seen: bytearray = field(default_factory=bytearray)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    cpu: float = 0.0

    def __post_init__(self) -> None:
        self.seen = bytearray(self.expected)


def make_layer(run: Run):
    """A layer built from the project's own settings (so: the same prefix and the default configuration)."""
    if run.args.layer != "redis":
        return layer_kinds.make_layer(run.args.layer, run.args.brokers, options={})
    os.environ.update({k: v for k, v in run.env.items() if k.startswith("TEST_")})
    spec = importlib.util.find_spec(SETTINGS)
    settings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(settings)
    config = settings.CHANNEL_LAYERS["default"]
    module, _, name = config["BACKEND"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls(**config.get("CONFIG", {}))


async def post_note(port: int, text: str):
    """Open a connection; return a function that writes the POST and returns a task reading the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = f"text={text}".encode()
    request = (
        b"POST /notes/add/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )

    async def answer() -> bytes:
        await writer.drain()
        data = await reader.read()
        writer.close()
        return data

    return lambda: (writer.write(request), asyncio.create_task(answer()))[1]


async def bench_broadcast(run: Run, ours: Ours) -> None:
    n, rounds = run.sizes.sockets, run.sizes.broadcasts
    print(
        f"\n3. Group broadcast to {n:,} WebSockets on /notes/ (Group({GROUP!r}) joined on connect),"
        f" {rounds} rounds sent by a consumer (POST /notes/add/ -> Note.save() -> Group.send) interleaved with"
        f" {rounds} rounds sent by the benchmark process",
        flush=True,
    )
    layer = make_layer(run)
    url = f"ws://127.0.0.1:{ours.port}/notes/"
    tracked: dict[str, Round] = {}
    unexpected: list[str] = []
    closed_early: list[str] = []

    async def listen(index: int, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for text in ws:
                now = time.perf_counter()
                rnd = tracked.get(text)
                if rnd is None:
                    unexpected.append(str(text)[:40])
                    continue
                if rnd.seen[index]:
                    rnd.duplicates += 1
                    continue
                rnd.seen[index] = 1
                rnd.received += 1
                rnd.last = now
                if rnd.first is None:
                    rnd.first = now
                if rnd.received == rnd.expected:
                    rnd.cpu = time.process_time() - rnd.cpu
                    rnd.done.set()
        except ConnectionClosed as exc:
            closed_early.append(f"socket {index}: {exc}")

    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    failures: list[str] = []

    async def connect(stack: contextlib.AsyncExitStack):
        async with gate:
            try:
                return await stack.enter_async_context(ws_connect(url))
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return None

    async with contextlib.AsyncExitStack() as stack:
        began = time.perf_counter()
        sockets = [ws for ws in await asyncio.gather(*(connect(stack) for _ in range(n))) if ws is not None]
        took = time.perf_counter() - began
        print(
            f"  connected {len(sockets):,} of {n:,} in {took:.1f} s ({CONNECT_CONCURRENCY} handshakes in flight);"
            f" {len(failures)} failed" + (f", e.g. {failures[0]}" if failures else ""),
            flush=True,
        )
        members = len(layer.group_channels(GROUP))
        print(f"  Group({GROUP!r}) has {members:,} live members (layer.group_channels)")
        run.figure(
            "broadcast: sockets connected and in the group",
            f"{len(sockets):,} / {members:,}",
            f"{n:,} / {n:,}",
            len(sockets) == n and members == n,
        )
        listeners = [asyncio.create_task(listen(i, ws)) for i, ws in enumerate(sockets)]
        expected = len(sockets)
        results: dict[str, list[Round]] = {"consumer": [], "benchmark": []}
        http_answers: list[bytes] = []
        try:
            for r in range(-1, rounds):  # round -1 of each kind: a warm-up, not counted
                for kind in ("consumer", "benchmark"):
                    tag = f"{'c' if kind == 'consumer' else 'b'}{r + 1 if r >= 0 else 'warm'}"
                    text = f"note:{tag}"
                    rnd = tracked[text] = Round(expected)
                    answer = None
                    if kind == "consumer":
                        send = await post_note(ours.port, tag)
                        rnd.cpu = time.process_time()
                        rnd.started = time.perf_counter()
                        answer = send()
                    else:
                        rnd.cpu = time.process_time()
                        rnd.started = time.perf_counter()
                        await asyncio.to_thread(layer.send_group, GROUP, {"text": text})
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(rnd.done.wait(), BROADCAST_TIMEOUT)
                    if not rnd.done.is_set():
                        rnd.cpu = time.process_time() - rnd.cpu
                    if answer is not None:
                        data = await asyncio.wait_for(answer, RECV_TIMEOUT)
                        if r >= 0:
                            http_answers.append(data)
                    if r >= 0:
                        results[kind].append(rnd)
                    await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # late arrivals still count as received below
        finally:
            for task in listeners:
                task.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)
        closing = time.perf_counter()
    print(f"  closed them all in {time.perf_counter() - closing:.1f} s")
    layer.close()

    bad_http = [a[:80] for a in http_answers if not a.startswith(b"HTTP/1.1 200")]
    if bad_http:
        print(f"  {len(bad_http)} POST /notes/add/ did not answer 200, e.g. {bad_http[0]!r}")
    for kind, label in (("consumer", "by a consumer"), ("benchmark", "by the benchmark process, not a consumer")):
        done = results[kind]
        complete = [r for r in done if r.received == r.expected]
        lost = sum(r.expected - r.received for r in done)
        dup = sum(r.duplicates for r in done)
        print(f"  sent {label}: {len(done)} rounds, {len(complete)} complete, {lost} messages lost, {dup} duplicates")
        if not complete:
            run.figure(f"broadcast {kind}: messages lost", f"{lost} of {expected * len(done):,}", "0", False)
            continue
        last = [r.last - r.started for r in complete]
        first = [r.first - r.started for r in complete]
        spread = [r.last - r.first for r in complete]
        cpu = [r.cpu for r in complete]
        print(
            f"    send -> FIRST client: p50 {millis(percentile(first, 50))}, max {millis(max(first))};"
            f" first -> last client: p50 {millis(percentile(spread, 50))}, max {millis(max(spread))}"
        )
        print(
            f"    send -> LAST client: p50 {millis(percentile(last, 50))}, p99 {millis(percentile(last, 99))},"
            f" max {millis(max(last))}; CPU this (client) process used per round: p50 {millis(percentile(cpu, 50))}"
        )
        short = "consumer" if kind == "consumer" else "benchmark process (not a consumer)"
        run.figure(f"broadcast by {short}: to last of {expected:,} p50", millis(percentile(last, 50)))
        run.figure(
            f"broadcast by {short}: to last of {expected:,} p99",
            millis(percentile(last, 99)),
            "<= 100 ms" if kind == "consumer" else "-",
            percentile(last, 99) <= 0.1 if kind == "consumer" else None,
        )
        run.figure(
            f"broadcast by {short}: messages lost",
            f"{lost} of {expected * len(done):,}",
            "0",
            lost == 0 and dup == 0,
        )
    if unexpected:
        print(f"  {len(unexpected)} unexpected messages, e.g. {unexpected[:3]}")
    if closed_early:
        print(f"  {len(closed_early)} sockets were closed by the server during the test, e.g. {closed_early[:2]}")
        run.notes.append(f"{len(closed_early)} /notes/ sockets were closed by the server during the broadcast test")


# -- main ----------------------------------------------------------------------------------------------------------


def migrated_database(env: dict[str, str], directory: str) -> str:
    path = os.path.join(directory, "db.sqlite3")
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v", "0"],
        cwd=ROOT,
        env=dict(env, TEST_DB_PATH=path),
        check=True,
        timeout=120,
    )
    return path


def report_logs(run: Run) -> None:
    for child in run.children:
        if child.label == "raw-echo":
            continue
        lines = [
            line
            for line in child.output().splitlines()
            if line.strip()
            and not line.startswith(("Running worker against", "Listening on channels"))
            and "Worker exiting" not in line
        ]
        if lines:
            print(f"  {child.label} (pid {child.pid}) logged {len(lines)} line(s); first ones:")
            for line in lines[:8]:
                print(f"    {line[:200]}")


async def run_all(run: Run) -> None:
    ours = Ours(run)
    print(
        f"side (a): interface-server pid {ours.server.pid} on port {ours.port},"
        f" runworker pids {', '.join(str(w.pid) for w in ours.workers)} (runworker {' '.join(WORKER_ARGS)})",
        flush=True,
    )
    gunicorn = None
    if importlib.util.find_spec("gunicorn") is None:
        print("side (b): gunicorn is NOT importable (pip install gunicorn): skipping the gunicorn side", flush=True)
        run.notes.append("gunicorn is not installed: the HTTP ratios were not measured")
    else:
        import gunicorn as gunicorn_module

        gunicorn = Gunicorn(run)
        print(
            f"side (b): gunicorn {gunicorn_module.__version__} -w {WORKERS} -k sync, master pid {gunicorn.master.pid}"
            f" on port {gunicorn.port}, worker pids {', '.join(map(str, sorted(child_pids(gunicorn.master.pid))))}",
            flush=True,
        )
    parts = run.args.only or ["http", "echo", "broadcast"]
    if "http" in parts:
        bench_http(run, ours, gunicorn)
    if gunicorn is not None:
        gunicorn.master.stop()
    if "echo" in parts:
        await bench_echo(run, ours)
    if "broadcast" in parts:
        await bench_broadcast(run, ours)
    await asyncio.sleep(0.5)
    print()
    report_logs(run)


def parse_args() -> argparse.Namespace:
    parser = benchmark_parser(__doc__, "a smaller, shorter run")
    parser.add_argument("--rounds", type=int, help="HTTP rounds per side (default 2, 1 with --quick)")
    parser.add_argument(
        "--layer",
        default="redis",
        help="the layer the stack runs on: redis (default), ipc, rabbitmq, or a layer URL (redis://, amqp://, ipc://)",
    )
    parser.add_argument(
        "--amqp-url",
        default=layer_kinds.default_amqp_url(),
        help="RabbitMQ broker for --layer rabbitmq (default: $RABBITMQ_URL, $CLOUDAMQP_URL or the local guest one)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=["http", "echo", "broadcast"],
        help="run only this part (repeatable; default: all three)",
    )
    args = parser.parse_args()
    if args.layer not in layer_kinds.SHARED:
        try:
            kind = kind_of(args.layer)
        except ValueError as exc:
            parser.error(f"--layer: {exc}")
        if kind == "redis":
            args.redis_url = args.layer
        elif kind == "amqp":
            args.amqp_url = args.layer
        args.layer = "rabbitmq" if kind == "amqp" else kind  # ipc://NAME: the run's own prefix, removed after
    return args


def main() -> int:
    args = parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: this benchmark needs it for the HTTP part")
        return 2
    stop_on_signals()
    sizes = QUICK if args.quick else FULL
    if args.rounds:
        sizes = Sizes(**{**sizes.__dict__, "http_rounds": args.rounds})
    limit = raise_fd_limit(sizes.sockets + 500, "the broadcast test")
    brokers = args.brokers = layer_kinds.Brokers(args.redis_url, args.amqp_url, f"e2ebench{os.getpid()}")
    prefix = brokers.layer_prefix("redis")  # the raw pair's keys (and the Redis layer's)
    tmp = tempfile.mkdtemp(prefix="e2e-bench-")
    pythonpath = os.pathsep.join([str(ROOT), str(BENCH_DIR), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = dict(
        os.environ,
        PYTHONPATH=pythonpath,
        DJANGO_SETTINGS_MODULE=SETTINGS,
        TEST_REDIS_URL=args.redis_url,
        TEST_LAYER_PREFIX=prefix,
    )
    if args.layer != "redis":
        env = layer_kinds.stack_env(args.layer, brokers, tmp, suffix="")
        env["TEST_REDIS_URL"] = args.redis_url
    client = redis.Redis.from_url(args.redis_url)
    run = Run(args, sizes, prefix, client, env=env)
    import django
    import websockets

    print(f"{load_average()} before the run")
    print(
        f"Layer: {args.layer}; Redis {client.info('server')['redis_version']} at {args.redis_url}, prefix {prefix!r},"
        f" {'quick' if args.quick else 'full'} run; {os.cpu_count()} CPUs; open-files limit {limit};"
        f" Python {sys.version.split()[0]}, Django {django.__version__}, websockets {websockets.__version__}",
        flush=True,
    )

    def work() -> None:
        env["TEST_DB_PATH"] = migrated_database(env, tmp)
        asyncio.run(run_all(run))

    def teardown() -> None:
        client.close()
        if args.layer != "redis":
            layer_kinds.cleanup([args.layer], brokers)
        shutil.rmtree(tmp, ignore_errors=True)

    return execute(run, work, "gunicorn / raw Redis", teardown)


if __name__ == "__main__":
    raise SystemExit(main())
