"""Benchmark the interface server end to end: WebSocket and HTTP clients -> server -> Redis -> echo app.

    python benchmarks/interface_bench.py [--quick] [--redis-url URL] [--http-client auto|wrk|asyncio]
                                         [--app-read batch|single]

Starts, in one run, an echo "app" process (reads the layer directly with
`receive_batch(..., 100, block=True)`: HTTP -> 200 "OK", connect -> accept,
receive -> the same text/bytes back) and `python -m interface_server` as a
subprocess on a free port, then measures:

1. WebSocket echo round trip, 1 client, sequential messages, p50/p99, taking
   turns with a raw redis-py pair ping-pong (A LPUSH ping, B BLPOP + LPUSH pong,
   A BLPOP) between this process and a second one. Both make two Redis hops,
   so the targets compare round trip with round trip (the one-way figure,
   half of it, is printed for reference);
2. 50 clients x 200 numbered messages at once (each sends the next after the
   echo of the last): loss, reordering, p50/p99, messages/s;
3. HTTP GET / at 50 concurrent keep-alive connections for 10 s with `wrk`
   when installed (else a raw asyncio HTTP/1.1 client): requests/s, p50/p99;
4. 2,000 idle WebSockets held 20 s on a freshly started server: its RSS idle
   and with all open (KB per connection), and every Redis command issued
   during the hold (INFO commandstats after CONFIG RESETSTAT, plus MONITOR to
   say which process sent each one).

--quick shrinks everything (500 idle sockets for 5 s). --app-read single makes
the echo app use `receive(..., block=True)` instead, to see what the extra
pop `receive_batch` makes after each blocking wait costs. Every process started
here is stopped at the end (also on Ctrl-C or an exception, and they die with
this process if it is killed), and every key under the run's prefix deleted.
Exits 0 unless something crashes; a missed target is marked MISSED.

Note: this resets Redis's command statistics (CONFIG RESETSTAT) and runs
MONITOR for the duration of the idle hold; use a Redis nobody else relies on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

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
from interface_bench_layer import NAME_ENV, OPTIONS_ENV, PREFIX_ENV, URL_ENV, make_layer

LAYER_PATH = "interface_bench_layer:channel_layer"
LAYER_OPTIONS = {"capacity": 10_000}  # 2,000 sockets connect at once: the default 100 would 503 them
APP_CHANNELS = ["http.request", "websocket.connect", "websocket.receive", "websocket.disconnect"]
APP_NAME, SERVER_NAME, MAIN_NAME, RAW_NAME = "ibench-echo-app", "ibench-interface-server", "ibench-main", "ibench-raw"
MESSAGE_SIZE = 100  # bytes of text per WebSocket message, and per raw Redis ping
WARMUP = 50
RECV_TIMEOUT = 10.0  # seconds before a missing echo counts as lost
START_TIMEOUT = 20.0
OPEN_CONCURRENCY = 100  # WebSocket handshakes in flight while opening the idle sockets
HTTP_CONNECTIONS = 50
BLOCKING_LOOP_COMMANDS = {"blmpop", "blpop", "evalsha"}  # what a receive_batch(block=True) loop may send
INSIDE_SCRIPTS = {"time", "lpop"}  # what the layer's pop script runs inside EVALSHA
BENCH_COMMANDS = {"config|resetstat", "monitor", "info", "client|list", "ping", "client|setname"}
MAX_IDLE_CALLS_PER_S = 1.0  # top-level commands per second from the server and the app together


@dataclass(frozen=True)
class Sizes:
    sequential: int
    clients: int
    per_client: int
    http_seconds: int
    idle_sockets: int
    idle_hold: float


FULL = Sizes(sequential=2000, clients=50, per_client=200, http_seconds=10, idle_sockets=2000, idle_hold=20)
QUICK = Sizes(sequential=300, clients=50, per_client=40, http_seconds=3, idle_sockets=500, idle_hold=5)


def child_env(run: Run, name: str, layer_options: dict | None = None) -> dict[str, str]:
    """The environment of a benchmark child: the run's layer (prefix, URL, options) and its name."""
    pythonpath = os.pathsep.join([str(ROOT), str(BENCH_DIR), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    options = json.dumps(LAYER_OPTIONS if layer_options is None else layer_options)
    return dict(
        os.environ,
        PYTHONPATH=pythonpath,
        **{PREFIX_ENV: run.prefix, URL_ENV: run.args.redis_url, OPTIONS_ENV: options, NAME_ENV: name},
    )


class Server(Child):
    def __init__(self, run: Run, layer_options: dict | None = None) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "interface_server", LAYER_PATH, "-p", str(self.port), "-v", "0"]
        super().__init__(run, "interface-server", argv, child_env(run, SERVER_NAME, layer_options))
        self.wait_for_port(self.port, timeout=START_TIMEOUT)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    def rss_kb(self) -> int:
        return proc_status_kb(self.pid, "VmRSS")

    def open_files_limit(self) -> str:
        for line in Path(f"/proc/{self.pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return f"{soft} (hard {hard})"
        return "?"


def proc_status_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field_name} for pid {pid}")


def start_echo_app(run: Run) -> Child:
    argv = [
        sys.executable,
        __file__,
        "--role",
        "echo-app",
        "--redis-url",
        run.args.redis_url,
        "--prefix",
        run.prefix,
        "--app-read",
        run.args.app_read,
    ]
    return Child(run, "echo-app", argv, child_env(run, APP_NAME))


def echo_app_counters(app: Child) -> dict:
    """The counters the echo app prints when it stops."""
    for line in reversed(app.output().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


# -- the child roles ---------------------------------------------------------------------------------


def run_echo_app(url: str, prefix: str, read: str) -> None:
    """The echo "app": one process reading the layer directly, no Django, no routing."""
    parent = os.getppid()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    layer = make_layer(url, prefix, APP_NAME, LAYER_OPTIONS)
    ok = {"status": 200, "headers": [[b"content-type", b"text/plain"]], "content": b"OK"}
    accept = {"accept": True}
    counts: Counter[str] = Counter()
    last_order: dict[str, int] = {}
    order_errors: list[str] = []
    full = 0
    try:
        while os.getppid() == parent:
            if read == "batch":
                batch = layer.receive_batch(APP_CHANNELS, 100, block=True)
            else:
                channel, message = layer.receive(APP_CHANNELS, block=True)
                batch = [] if channel is None else [(channel, message)]
            for channel, message in batch:
                counts[channel] += 1
                reply_channel = message["reply_channel"]
                if channel == "http.request":
                    reply = ok
                elif channel == "websocket.connect":
                    last_order[reply_channel] = 0
                    reply = accept
                elif channel == "websocket.receive":
                    order, expected = message.get("order"), last_order.get(reply_channel, 0) + 1
                    if order != expected and len(order_errors) < 20:
                        order_errors.append(f"{reply_channel}: order {order}, expected {expected}")
                    last_order[reply_channel] = order
                    text = message.get("text")
                    reply = {"text": text} if text is not None else {"bytes": message.get("bytes")}
                else:  # websocket.disconnect: nothing to answer
                    last_order.pop(reply_channel, None)
                    continue
                while True:
                    try:
                        layer.send(reply_channel, reply)
                        break
                    except layer.ChannelFull:
                        full += 1
                        time.sleep(0.001)
    finally:
        print(
            json.dumps({"received": dict(counts), "order_errors": order_errors, "channel_full_retries": full}),
            flush=True,
        )
        layer.close()


# -- statistics and reporting ------------------------------------------------------------------------


def text_message(tag: str) -> str:
    return (tag + ":").ljust(MESSAGE_SIZE, "x")


# -- 1: sequential round trips against the raw Redis pair ----------------------------------------------


async def bench_sequential(run: Run, server: Server) -> None:
    n = run.sizes.sequential
    print(
        f"\n1. WebSocket echo round trip, 1 client x {n:,} sequential {MESSAGE_SIZE}-byte messages,"
        f" taking turns with a raw Redis LPUSH/BLPOP pair",
        flush=True,
    )
    with RawPair(run, MESSAGE_SIZE, name=MAIN_NAME, partner_name=RAW_NAME) as raw:
        times = await echo_against_raw_pair(raw, server.ws_url, n, WARMUP, MESSAGE_SIZE)
    ours, base = times.echo, times.raw_round_trip
    raw_p50, raw_p99 = percentile(base, 50), percentile(base, 99)
    print(
        f"  raw pair: round trip p50 {millis(raw_p50)}, p99 {millis(raw_p99)};"
        f" one way (round trip / 2) p50 {millis(raw_p50 / 2)}, p99 {millis(raw_p99 / 2)}"
    )
    print(
        "  baseline used: the raw pair's ROUND TRIP (LPUSH->BLPOP->LPUSH->BLPOP, two hops),"
        " like the echo's two layer hops"
    )
    print(
        f"  ours: mean {millis(statistics.fmean(ours))}, max {millis(max(ours))};"
        f" raw: mean {millis(statistics.fmean(base))}, max {millis(max(base))}"
    )
    run.compare("WS echo RTT p50 (vs raw pair RTT p50)", percentile(ours, 50), raw_p50, millis, Target(3))
    run.compare("WS echo RTT p99 (vs raw pair RTT p99)", percentile(ours, 99), raw_p99, millis, Target(10))


# -- 2: concurrent clients ---------------------------------------------------------------------------------


async def bench_concurrent(run: Run, server: Server) -> None:
    clients, per_client = run.sizes.clients, run.sizes.per_client
    total = clients * per_client
    print(
        f"\n2. {clients} WebSocket clients x {per_client} numbered messages at once"
        " (each sends the next after the echo)",
        flush=True,
    )
    latencies: list[float] = []
    mismatches: list[str] = []
    lost = 0
    received = 0
    start_gun = asyncio.Event()

    async def client(cid: int, ws) -> None:
        nonlocal lost, received
        await start_gun.wait()
        for seq in range(per_client):
            text = text_message(f"{cid}:{seq}")
            start = time.perf_counter()
            await ws.send(text)
            try:
                got = await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
            except (TimeoutError, Exception) as exc:
                lost += per_client - seq
                mismatches.append(
                    f"client {cid}: no echo of message {seq} ({type(exc).__name__}); {per_client - seq} counted lost"
                )
                return
            latencies.append(time.perf_counter() - start)
            received += 1
            if got != text:
                mismatches.append(f"client {cid}: sent {text[:20]!r}, got {got[:20]!r}")

    async with contextlib.AsyncExitStack() as stack:
        sockets = await asyncio.gather(*(stack.enter_async_context(ws_connect(server.ws_url)) for _ in range(clients)))
        tasks = [asyncio.create_task(client(cid, ws)) for cid, ws in enumerate(sockets)]
        began = time.perf_counter()
        start_gun.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
    for line in mismatches[:20]:
        print(f"  MISMATCH {line}")
    if len(mismatches) > 20:
        print(f"  ... and {len(mismatches) - 20} more mismatches")
    wrong = sum("sent " in m for m in mismatches)
    run.figure(
        f"WS {clients}x{per_client}: echoes received / lost / wrong-or-out-of-order",
        f"{received}/{total} / {lost} / {wrong}",
        f"{total}/{total} / 0 / 0",
        received == total and not mismatches,
    )
    run.figure(f"WS {clients}x{per_client}: RTT p50", millis(percentile(latencies, 50)))
    run.figure(f"WS {clients}x{per_client}: RTT p99", millis(percentile(latencies, 99)))
    run.figure(f"WS {clients}x{per_client}: throughput", f"{received / elapsed:,.0f} msg/s")


# -- 3: HTTP -------------------------------------------------------------------------------------------------


async def run_asyncio_http(port: int, seconds: int) -> dict:
    """50 keep-alive connections, raw HTTP/1.1 over asyncio streams, parsing Content-Length."""
    latencies: list[float] = []
    bad = 0
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    length_re = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)

    async def worker(deadline: float) -> None:
        nonlocal bad
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                match = length_re.search(head)
                body = await reader.readexactly(int(match.group(1))) if match else b""
                latencies.append(time.perf_counter() - start)
                if head[9:12] != b"200" or body != b"OK":
                    bad += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker(began + seconds) for _ in range(HTTP_CONNECTIONS)))
    elapsed = time.perf_counter() - began
    return {
        "client": "asyncio, 50 keep-alive connections",
        "requests": len(latencies),
        "rate": len(latencies) / elapsed,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "bad": bad,
    }


async def bench_http(run: Run, server: Server) -> None:
    seconds = run.sizes.http_seconds
    use_wrk = run.args.http_client == "wrk" or (run.args.http_client == "auto" and shutil.which("wrk"))
    print(
        f"\n3. HTTP GET / at {HTTP_CONNECTIONS} concurrent keep-alive clients for {seconds} s"
        f" ({'wrk' if use_wrk else 'asyncio client'})",
        flush=True,
    )
    status, body, _ = http_get(server.port)
    if (status, body) != (200, b"OK"):
        raise RuntimeError(f"GET / answered {status} {body[:100]!r}, not 200 'OK'")
    if use_wrk:
        result = run_wrk(server.port, seconds, 1, HTTP_CONNECTIONS)
    else:
        result = await run_asyncio_http(server.port, seconds)
    print(f"  client: {result['client']}; {result['requests']:,} requests, {result['bad']} errors or non-2xx")
    run.figure("HTTP requests/s (50 keep-alive)", f"{result['rate']:,.0f} req/s")
    run.figure("HTTP p50", millis(result["p50"]))
    run.figure("HTTP p99", millis(result["p99"]))
    run.figure("HTTP errors or non-2xx", f"{result['bad']} of {result['requests']:,}", "0", result["bad"] == 0)


# -- 4: idle sockets ---------------------------------------------------------------------------------------------


class Monitor(threading.Thread):
    """Every command Redis runs while it is on (MONITOR), as (client address or "lua", command)."""

    LINE = re.compile(rb'^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"')

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(name="redis-monitor", daemon=True)
        kwargs = client.connection_pool.connection_kwargs
        self.sock = socket.create_connection((kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379)), timeout=5)
        if kwargs.get("password"):
            self.sock.sendall(_command("AUTH", kwargs["password"]))
        if kwargs.get("db"):
            self.sock.sendall(_command("SELECT", str(kwargs["db"])))
        self.sock.sendall(_command("MONITOR"))
        self.sock.settimeout(0.25)
        self.commands: list[tuple[str, str]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        pending = b""
        while not self.stopping.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            pending += data
            *lines, pending = pending.split(b"\r\n")
            for line in lines:
                match = self.LINE.match(line)
                if match:
                    self.commands.append((match.group(1).decode(), match.group(2).decode().lower()))

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)
        self.sock.close()


def _command(*words: str) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w.encode()), w.encode()) for w in words)


def command_stats(client: redis.Redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}


def client_names(client: redis.Redis) -> dict[str, str]:
    return {c["addr"]: c.get("name") or "(unnamed)" for c in client.client_list()}


async def open_sockets(url: str, count: int, stack: contextlib.AsyncExitStack) -> list:
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def one():
        async with gate:
            return await stack.enter_async_context(ws_connect(url))

    return await asyncio.gather(*(one() for _ in range(count)))


async def bench_idle(run: Run, server: Server) -> None:
    n, hold = run.sizes.idle_sockets, run.sizes.idle_hold
    print(
        f"\n4. {n:,} idle WebSockets held {hold:g} s on a fresh interface-server (pid {server.pid},"
        f" open-files limit {server.open_files_limit()})",
        flush=True,
    )
    await asyncio.sleep(1)
    rss_start = server.rss_kb()
    async with contextlib.AsyncExitStack() as warm:  # one-off costs (first handshake, caches) before the baseline
        await open_sockets(server.ws_url, 10, warm)
    await asyncio.sleep(1)
    rss_idle = server.rss_kb()
    print(f"  server RSS after start {rss_start:,} KB; idle after opening and closing 10 sockets {rss_idle:,} KB")
    async with contextlib.AsyncExitStack() as stack:
        began = time.perf_counter()
        sockets = await open_sockets(server.ws_url, n, stack)
        opened = time.perf_counter() - began
        await asyncio.sleep(1)
        rss_open = server.rss_kb()
        print(
            f"  opened {len(sockets):,} in {opened:.1f} s ({len(sockets) / opened:,.0f}/s);"
            f" server RSS {rss_open:,} KB ({(rss_open - rss_idle) / n:.1f} KB per socket)",
            flush=True,
        )
        run.client.config_resetstat()
        monitor = Monitor(run.client)
        monitor.start()
        began = time.monotonic()
        await asyncio.sleep(hold)
        held = time.monotonic() - began
        stats = command_stats(run.client)
        names = client_names(run.client)
        monitor.stop()
        rss_held = server.rss_kb()
        still_open = sum(ws.close_code is None for ws in sockets)
        closing = time.perf_counter()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        closed = time.perf_counter() - closing
    print(
        f"  after the hold: server RSS {rss_held:,} KB, {still_open:,} of {n:,} sockets still open;"
        f" closed them all in {closed:.1f} s"
    )
    print(
        f"  INFO commandstats after CONFIG RESETSTAT, {held:.1f} s hold (calls from every client,"
        " including the commands Lua scripts ran):"
    )
    for name, calls in sorted(stats.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<20} {calls:>6}{'  (this benchmark)' if name in BENCH_COMMANDS else ''}")
    lua, other = "lua (in anyone's EVALSHA)", "other clients (not ours)"
    ours = {SERVER_NAME, APP_NAME, MAIN_NAME}
    by_sender: Counter[tuple[str, str]] = Counter()
    for address, command in monitor.commands:
        sender = lua if address == "lua" else names.get(address, address)
        by_sender[(sender if sender in ours | {lua} else other, command)] += 1
    print("  MONITOR during the hold, by sender (CLIENT SETNAME names):")
    for (sender, command), calls in sorted(by_sender.items()):
        print(f"    {sender:<26} {command:<10} {calls:>5}")
    loop = {SERVER_NAME, APP_NAME}
    top_level = sum(c for (s, _), c in by_sender.items() if s in loop)
    others = sum(c for (s, _), c in by_sender.items() if s == other)
    if others:
        print(
            f"  other clients of this Redis (not started here) sent {others} commands during the hold:"
            " INFO commandstats counts theirs too, so only MONITOR attributes commands to our processes"
        )
    unexpected = {(s, k): c for (s, k), c in by_sender.items() if s in loop and k not in BLOCKING_LOOP_COMMANDS}
    for (sender, command), calls in unexpected.items():
        print(f"  UNEXPECTED during the idle hold: {sender} sent {command.upper()} x{calls}")
    per_socket_open = (rss_open - rss_idle) / n
    per_socket = (rss_held - rss_idle) / n
    print(
        f"  KB per socket: {per_socket_open:.1f} right after opening, {per_socket:.1f} at the end of the hold"
        " (the table uses the latter)"
    )
    # Issue 19's target (daphne 1.4.2 took 8.8 KB); 12.8 KB before the handshake was shed (2026-12-07).
    run.figure(f"idle WS: server RSS per socket ({n:,} open)", f"{per_socket:.1f} KB", "<= 8 KB", per_socket <= 8)
    run.figure(f"idle WS: server RSS idle -> {n:,} open", f"{rss_idle / 1024:.1f} -> {rss_held / 1024:.1f} MiB")
    run.figure(
        f"idle WS: sockets still open after {hold:g} s", f"{still_open:,}/{n:,}", f"{n:,}/{n:,}", still_open == n
    )
    rate = top_level / held
    print(
        "  server + app commands during the hold: "
        + ", ".join(
            f"{s.removeprefix('ibench-')} {k.upper()} x{c}" for (s, k), c in sorted(by_sender.items()) if s in loop
        )
    )
    run.figure(
        f"idle WS: Redis cmds from server+app in {held:.0f} s hold",
        f"{top_level} ({rate:.2f}/s)",
        f"blocking reads only, <= {MAX_IDLE_CALLS_PER_S:g}/s",
        not unexpected and rate <= MAX_IDLE_CALLS_PER_S,
    )


# -- main ----------------------------------------------------------------------------------------------------------


def source_fingerprint() -> str:
    """Which interface-server code ran: the git commit, and a hash of the package's files as they are now."""
    import hashlib

    digest = hashlib.sha1()
    for path in sorted((ROOT / "interface_server").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "interface_server"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head, dirty = "?", ""
    changes = " + uncommitted changes" if dirty else ""
    return f"git {head or '?'}{changes}, interface_server/*.py sha1 {digest.hexdigest()[:12]}"


def server_problems(server: Server) -> list[str]:
    return [line for line in server.output().splitlines() if line.strip()]


async def run_all(run: Run) -> None:
    app = start_echo_app(run)
    server = Server(run)
    reads = "receive_batch(..., 100, block=True)" if run.args.app_read == "batch" else "receive(..., block=True)"
    print(
        f"interface-server pid {server.pid} on port {server.port}; echo app pid {app.pid}, reading with {reads}",
        flush=True,
    )
    await bench_sequential(run, server)
    await bench_concurrent(run, server)
    await bench_http(run, server)
    server.stop()
    report_server_log(run, server)
    # A fresh server for the memory figures, so nothing the tests above allocated hides in its baseline.
    server = Server(run)
    await bench_idle(run, server)
    server.stop()
    report_server_log(run, server)
    await asyncio.sleep(0.5)  # let the app drain the disconnects
    app.stop()
    counters = echo_app_counters(app)
    full = counters.get("channel_full_retries")
    print(f"\necho app: received {counters.get('received')}, ChannelFull retries {full}")
    for line in counters.get("order_errors", []):
        print(f"  echo app saw an out-of-order websocket.receive: {line}")
    if counters.get("order_errors"):
        run.notes.append("the echo app saw websocket.receive messages out of order")


def report_server_log(run: Run, server: Server) -> None:
    lines = server_problems(server)
    if lines:
        print(f"  interface-server (pid {server.pid}) logged {len(lines)} line(s) at -v 0; first ones:")
        for line in lines[:10]:
            print(f"    {line}")


def parse_args() -> argparse.Namespace:
    parser = benchmark_parser(__doc__, "a smaller, shorter run")
    parser.add_argument(
        "--http-client",
        choices=["auto", "wrk", "asyncio"],
        default="auto",
        help="HTTP load generator (default: wrk when installed)",
    )
    parser.add_argument(
        "--app-read",
        choices=["batch", "single"],
        default="batch",
        help="how the echo app reads: receive_batch(..., 100, block=True) (default) or receive(..., block=True)",
    )
    parser.add_argument("--role", choices=["main", "echo-app"], default="main", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.role == "echo-app":
        run_echo_app(args.redis_url, args.prefix, args.app_read)
        return 0
    stop_on_signals()
    sizes = QUICK if args.quick else FULL
    limit = raise_fd_limit(sizes.idle_sockets + 200, "the idle-socket test")
    prefix = f"ibench{os.getpid()}:"
    client = redis.Redis.from_url(args.redis_url, client_name=MAIN_NAME)
    layer = make_layer(args.redis_url, prefix, MAIN_NAME, LAYER_OPTIONS)
    run = Run(args, sizes, prefix, client)
    import websockets

    print(f"{load_average()} before the run")
    print(
        f"Redis {client.info('server')['redis_version']} at {args.redis_url}, key prefix {prefix!r},"
        f" {'quick' if args.quick else 'full'} run; {os.cpu_count()} CPUs; open-files limit {limit}"
        f" (children inherit it); websockets {websockets.__version__}; wrk {'yes' if shutil.which('wrk') else 'no'}",
        flush=True,
    )
    print(f"interface-server code: {source_fingerprint()}", flush=True)
    layer.flush()

    def teardown() -> None:
        layer.flush()
        layer.close()
        client.close()

    return execute(run, lambda: asyncio.run(run_all(run)), "baseline", teardown)


if __name__ == "__main__":
    raise SystemExit(main())
