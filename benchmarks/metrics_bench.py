"""The interface server's cost of metrics: WebSocket echo p50 and HTTP requests/s, metrics off and on, one run.

    python benchmarks/metrics_bench.py [--quick] [--echoes N] [--slices N] [--http-seconds S]
                                       [--redis-url URL] [--http-client auto|wrk|asyncio]

First, in this process: what the hooks cost per WebSocket echo and per HTTP
request (the exact statements the server runs, metrics on and off), and how
long rendering /metrics takes for a server with 10,000 open WebSockets.

Then one echo app (interface_bench.py's: it reads the layer directly) and two
interface servers on the same Redis: "off" (no `--metrics-port`: nothing is
counted) and "on" (`--metrics-port`, its /metrics and /readyz read every
second for the whole run, fifteen times Prometheus's usual rate). On a shared
machine the load changes from second to second, so the two are measured in
turns, close together:

1. WebSocket echo round trip: one client per server, `--echoes` 100-byte
   messages on each, one on each server in turn: p50 (and p90) of each;
2. HTTP GET / at 50 keep-alive connections (`wrk` when installed):
   `--slices` slices of `--http-seconds` on each server in turn (the order
   flips every slice): the median requests/s of each, and the median of the
   slices' on/off ratios.

Target: "on" within 5% of "off" (p50 ratio <= 1.05, req/s ratio >= 0.95).
Every process started here is stopped at the end and every key under the
run's prefix deleted.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import threading
import time
import urllib.request

import redis
from common import benchmark_parser, millis, percentile, ws_connect
from harness import Child, Run, Target, execute, free_port, load_average, run_wrk, stop_on_signals
from interface_bench import (
    LAYER_OPTIONS,
    LAYER_PATH,
    MAIN_NAME,
    SERVER_NAME,
    START_TIMEOUT,
    child_env,
    run_asyncio_http,
    source_fingerprint,
    start_echo_app,
    text_message,
)
from interface_bench_layer import make_layer

from channels_core.test.processes import cpu_seconds

HTTP_CONNECTIONS = 50
SCRAPE_EVERY = 1.0
SCRAPE_SOCKETS = 10_000


# -- in this process: what the hooks and a scrape cost, free of the machine's noise --------------------


def ws_echo_hooks(stats, clock=time.monotonic) -> None:
    """What one WebSocket echo adds with metrics on (the hooks of http_protocol, ws_protocol, server)."""
    stats.bytes_in_websocket += 106  # HTTPProtocol.dataReceived
    receive_at = clock()  # WebSocketProtocol.onMessage
    stats.message_out("websocket.receive")  # Server.send_soon
    stats.replies_in += 1  # Server.deliver_replies
    stats.latency_ws_receive.observe(clock() - receive_at)  # WebSocketProtocol.handle_reply
    stats.bytes_out_websocket += 102  # WebSocketProtocol.sendData


def http_request_hooks(stats, clock=time.monotonic) -> None:
    """What one HTTP request adds with metrics on (keep-alive: no new connection)."""
    stats.bytes_in_http += 40
    started = clock()  # ActiveRequest already takes this time for the access log: not counted as extra
    stats.message_out("http.request")
    stats.replies_in += 1
    stats.latency_http.observe(clock() - started)
    stats.http_responses[200] = stats.http_responses.get(200, 0) + 1
    stats.bytes_out_http += 120


def hooks_off(stats, times: int) -> None:
    """The `is None` tests the same events make with metrics off."""
    for _ in range(times):
        if stats is not None:
            raise AssertionError


def per_call_ns(fn, *args, n: int = 200_000) -> float:
    began = time.perf_counter()
    for _ in range(n):
        fn(*args)
    return (time.perf_counter() - began) / n * 1e9


def scrape_ms(sockets: int) -> tuple[float, int]:
    """Milliseconds to render /metrics for a server with `sockets` open WebSockets (a stand-in server object)."""
    from types import SimpleNamespace

    from prometheus_client import generate_latest

    from interface_server.metrics import Stats
    from interface_server.metrics_collector import build_registry
    from interface_server.ws_protocol import WebSocketProtocol

    stats = Stats()
    for _ in range(1000):
        ws_echo_hooks(stats)
        http_request_hooks(stats)
    sender = SimpleNamespace(
        queues=SimpleNamespace(full_counts={"websocket.receive": 3}, finished_count=10),
        handed=10,
        unavailable=lambda: False,
    )
    server = SimpleNamespace(
        stats=stats,
        counters={"paused": 2, "send_timeouts": 1, "replies_dropped": 4},
        connections={WebSocketProtocol() for _ in range(sockets)},
        sender=sender,
        channel_layer=None,
    )
    registry = build_registry(server)
    generate_latest(registry)
    runs = 20
    began = time.perf_counter()
    for _ in range(runs):
        page = generate_latest(registry)
    return (time.perf_counter() - began) / runs * 1e3, len(page)


def bench_in_process(run: Run) -> None:
    from interface_server.metrics import Stats

    print("\nIn this process (no network): the hooks' cost per event, and a scrape's", flush=True)
    stats = Stats()
    ws_on = per_call_ns(ws_echo_hooks, stats)
    http_on = per_call_ns(http_request_hooks, stats)
    off = per_call_ns(hooks_off, None, 7)
    run.figure("hooks per WS echo, metrics on (6 hooks)", f"{ws_on:,.0f} ns")
    run.figure("hooks per HTTP request, metrics on (7 hooks)", f"{http_on:,.0f} ns")
    run.figure("hooks per event, metrics off (7 `is None` tests)", f"{off:,.0f} ns")
    took, size = scrape_ms(SCRAPE_SOCKETS)
    run.figure(f"render /metrics with {SCRAPE_SOCKETS:,} open WebSockets", f"{took:.2f} ms ({size:,} bytes)")


class Server(Child):
    """An interface server, with `--metrics-port` when `metrics` is set."""

    def __init__(self, run: Run, metrics: bool) -> None:
        self.port = free_port()
        self.metrics_port = free_port() if metrics else None
        argv = [sys.executable, "-m", "interface_server", LAYER_PATH, "-p", str(self.port), "-v", "0"]
        if self.metrics_port:
            argv += ["--metrics-port", str(self.metrics_port)]
        super().__init__(
            run, f"interface-server (metrics {'on' if metrics else 'off'})", argv, child_env(run, SERVER_NAME)
        )
        self.wait_for_port(self.port, timeout=START_TIMEOUT)
        if self.metrics_port:
            self.wait_for_port(self.metrics_port, timeout=START_TIMEOUT)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"


class Scraper(threading.Thread):
    """Reads /metrics and /readyz every `SCRAPE_EVERY` seconds until stopped; counts the scrapes."""

    def __init__(self, port: int) -> None:
        super().__init__(name="scraper", daemon=True)
        self.port = port
        self.stopping = threading.Event()
        self.scrapes = 0
        self.bytes = 0

    def run(self) -> None:
        while not self.stopping.wait(SCRAPE_EVERY):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
                self.bytes = len(response.read())
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=5) as response:
                response.read()
            self.scrapes += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


async def echo_pairs(sockets: dict, count: int, warmup: int = 50) -> dict[str, list[float]]:
    """`count` echoes on each server, one on each in turn (who goes first alternates): paired samples."""
    times: dict[str, list[float]] = {mode: [] for mode in sockets}
    modes = list(sockets)
    for i in range(warmup + count):
        for mode in modes if i % 2 == 0 else modes[::-1]:
            text = text_message(f"m{i}")
            began = time.perf_counter()
            await sockets[mode].send(text)
            got = await asyncio.wait_for(sockets[mode].recv(), 10)
            if got != text:
                raise RuntimeError(f"echo mismatch: sent {text[:20]!r}, got {got[:20]!r}")
            if i >= warmup:
                times[mode].append(time.perf_counter() - began)
    return times


async def http_load(run: Run, port: int) -> dict:
    seconds = run.args.http_seconds
    use_wrk = run.args.http_client == "wrk" or (run.args.http_client == "auto" and shutil.which("wrk"))
    if use_wrk:
        result = await asyncio.to_thread(run_wrk, port, seconds, 1, HTTP_CONNECTIONS, False)
    else:
        result = await run_asyncio_http(port, seconds)
    if result["bad"]:
        run.notes.append(f"{result['bad']} HTTP errors or non-2xx on port {port}")
    return result


async def run_all(run: Run) -> None:
    start_echo_app(run)
    # --same: both servers without metrics (an A/A run: what the comparison shows when nothing differs).
    servers = {"off": Server(run, metrics=False), "on": Server(run, metrics=not run.args.same)}
    if run.args.same:
        print("--same: both servers run WITHOUT metrics; 'on' is only a label (an A/A run)", flush=True)
        await compare(run, servers)
        return
    scraper = Scraper(servers["on"].metrics_port)
    scraper.start()  # the whole run long: the "on" server is always being scraped
    try:
        await compare(run, servers)
    finally:
        scraper.stop()
    print(f"  {scraper.scrapes} scrapes of /metrics + /readyz during the run; last page {scraper.bytes:,} bytes")


async def compare(run: Run, servers: dict[str, Server]) -> None:
    args = run.args
    print(f"\nWebSocket echo: {args.echoes:,} round trips on each server, taking turns message by message", flush=True)
    async with ws_connect(servers["off"].ws_url) as ws_off, ws_connect(servers["on"].ws_url) as ws_on:
        cpu_before = {mode: cpu_seconds(server.pid) for mode, server in servers.items()}
        times = await echo_pairs({"off": ws_off, "on": ws_on}, args.echoes)
        cpu = {mode: cpu_seconds(server.pid) - cpu_before[mode] for mode, server in servers.items()}
    for mode in ("off", "on"):
        run.figure(
            f"WS echo, metrics {mode}: p50 / p90",
            f"{millis(percentile(times[mode], 50))} / {millis(percentile(times[mode], 90))}",
        )
    run.compare(
        "server CPU per WS echo (on vs off)",
        cpu["on"] / args.echoes,
        cpu["off"] / args.echoes,
        lambda seconds: f"{seconds * 1e6:,.0f} us",
        Target(1.05),
    )
    run.compare(
        "WS echo p50 (on vs off)",
        percentile(times["on"], 50),
        percentile(times["off"], 50),
        millis,
        Target(1.05),
    )

    print(
        f"\nHTTP GET / at {HTTP_CONNECTIONS} keep-alive connections: {args.slices} slices of {args.http_seconds} s"
        " per server, taking turns",
        flush=True,
    )
    rates: dict[str, list[float]] = {"off": [], "on": []}
    cpu_total = {"off": 0.0, "on": 0.0}
    requests = {"off": 0, "on": 0}
    ratios = []
    for i in range(args.slices):
        order = ("off", "on") if i % 2 == 0 else ("on", "off")
        got = {}
        for mode in order:
            before = cpu_seconds(servers[mode].pid)
            result = await http_load(run, servers[mode].port)
            cpu_total[mode] += cpu_seconds(servers[mode].pid) - before
            requests[mode] += result["requests"]
            got[mode] = result["rate"]
            rates[mode].append(result["rate"])
        ratios.append(got["on"] / got["off"])
        print(f"  slice {i + 1}: off {got['off']:,.0f} req/s, on {got['on']:,.0f} req/s", flush=True)
    run.compare(
        "server CPU per HTTP request (on vs off)",
        cpu_total["on"] / requests["on"],
        cpu_total["off"] / requests["off"],
        lambda seconds: f"{seconds * 1e6:,.0f} us",
        Target(1.05),
    )
    for mode in ("off", "on"):
        run.figure(
            f"HTTP req/s, metrics {mode}: median (min .. max)",
            f"{statistics.median(rates[mode]):,.0f} ({min(rates[mode]):,.0f} .. {max(rates[mode]):,.0f})",
        )
    run.compare(
        "HTTP req/s, medians (on vs off)",
        statistics.median(rates["on"]),
        statistics.median(rates["off"]),
        lambda r: f"{r:,.0f} req/s",
        Target(0.95, at_least=True),
    )
    run.figure("HTTP: median of the slices' on/off ratios", f"{statistics.median(ratios):.3f}")


def parse_args():
    parser = benchmark_parser(__doc__, "1,000 echoes and 4 slices of 2 s (default 5,000 echoes, 10 slices of 3 s)")
    parser.add_argument("--echoes", type=int, default=None, help="echoes per server (default 5000; --quick 1000)")
    parser.add_argument("--slices", type=int, default=None, help="HTTP slices per server (default 10; --quick 4)")
    parser.add_argument("--http-seconds", type=int, default=None, help="seconds per HTTP slice (default 3)")
    parser.add_argument("--http-client", choices=["auto", "wrk", "asyncio"], default="auto")
    parser.add_argument("--same", action="store_true", help="A/A run: both servers without metrics (the noise)")
    args = parser.parse_args()
    args.echoes = args.echoes or (1000 if args.quick else 5000)
    args.slices = args.slices or (4 if args.quick else 10)
    args.http_seconds = args.http_seconds or (2 if args.quick else 3)
    args.app_read = "batch"  # for interface_bench's echo app
    return args


def main() -> int:
    args = parse_args()
    stop_on_signals()
    prefix = f"mbench{os.getpid()}:"
    client = redis.Redis.from_url(args.redis_url, client_name=MAIN_NAME)
    layer = make_layer(args.redis_url, prefix, MAIN_NAME, LAYER_OPTIONS)
    run = Run(args, None, prefix, client)
    print(f"{load_average()} before the run; {os.cpu_count()} CPUs; wrk {'yes' if shutil.which('wrk') else 'no'}")
    print(f"interface-server code: {source_fingerprint()}", flush=True)

    def teardown() -> None:
        layer.flush()
        layer.close()
        client.close()

    def work() -> None:
        bench_in_process(run)
        asyncio.run(run_all(run))

    return execute(run, work, "metrics off", teardown)


if __name__ == "__main__":
    raise SystemExit(main())
