"""The interface server's cost of metrics: WebSocket echo p50 and HTTP requests/s, metrics off and on, one run.

    python benchmarks/metrics_bench.py [--quick] [--rounds N] [--redis-url URL] [--http-client auto|wrk|asyncio]

Starts one echo app (interface_bench.py's: it reads the layer directly) and
two interface servers on the same Redis: "off" (no `--metrics-port`: no
counting at all) and "on" (`--metrics-port`, with a scraper reading
`/metrics` and `/readyz` every second while it is measured, fifteen times
Prometheus's usual rate). Each round measures both servers, taking turns
(the order flips every round), so both see the same machine load:

1. WebSocket echo round trip: one client, `--echoes` sequential 100-byte
   messages (after a warm-up), p50;
2. HTTP GET / at 50 keep-alive connections for `--http-seconds` (`wrk` when
   installed), requests/s.

The median over the rounds of each figure is compared: on / off (target:
within 5%, i.e. ratio <= 1.05 for p50 and >= 0.95 for req/s; on a shared
machine the spread between rounds of one mode, printed too, is the noise).
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

    from interface_server.metrics import Stats, build_registry
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


async def echo_p50(ws, count: int, warmup: int = 50) -> float:
    times = []
    for i in range(warmup + count):
        text = text_message(f"m{i}")
        began = time.perf_counter()
        await ws.send(text)
        got = await asyncio.wait_for(ws.recv(), 10)
        if got != text:
            raise RuntimeError(f"echo mismatch: sent {text[:20]!r}, got {got[:20]!r}")
        if i >= warmup:
            times.append(time.perf_counter() - began)
    return percentile(times, 50)


async def http_rate(run: Run, port: int) -> float:
    seconds = run.args.http_seconds
    use_wrk = run.args.http_client == "wrk" or (run.args.http_client == "auto" and shutil.which("wrk"))
    if use_wrk:
        result = await asyncio.to_thread(run_wrk, port, seconds, 1, HTTP_CONNECTIONS, False)
    else:
        result = await run_asyncio_http(port, seconds)
    if result["bad"]:
        run.notes.append(f"{result['bad']} HTTP errors or non-2xx on port {port}")
    return result["rate"]


async def measure(run: Run, server: Server, ws) -> tuple[float, float, int]:
    """(echo p50, HTTP req/s, scrapes made meanwhile) for one server."""
    scraper = Scraper(server.metrics_port) if server.metrics_port else None
    if scraper:
        scraper.start()
    try:
        p50 = await echo_p50(ws, run.args.echoes)
        rate = await http_rate(run, server.port)
    finally:
        if scraper:
            scraper.stop()
    return p50, rate, scraper.scrapes if scraper else 0


async def run_all(run: Run) -> None:
    start_echo_app(run)
    servers = {"off": Server(run, metrics=False), "on": Server(run, metrics=True)}
    p50s: dict[str, list[float]] = {"off": [], "on": []}
    rates: dict[str, list[float]] = {"off": [], "on": []}
    scrapes = 0
    async with ws_connect(servers["off"].ws_url) as ws_off, ws_connect(servers["on"].ws_url) as ws_on:
        sockets = {"off": ws_off, "on": ws_on}
        for round_no in range(run.args.rounds):
            order = ("off", "on") if round_no % 2 == 0 else ("on", "off")
            line = []
            for mode in order:
                p50, rate, scraped = await measure(run, servers[mode], sockets[mode])
                p50s[mode].append(p50)
                rates[mode].append(rate)
                scrapes += scraped
                line.append(f"{mode}: echo p50 {millis(p50)}, HTTP {rate:,.0f} req/s")
            print(f"  round {round_no + 1}/{run.args.rounds}: " + "; ".join(line), flush=True)
    page = urllib.request.urlopen(f"http://127.0.0.1:{servers['on'].metrics_port}/metrics", timeout=5).read()
    print(f"  {scrapes} scrapes of /metrics + /readyz during the 'on' measurements; last page {len(page):,} bytes")

    def spread(values: list[float], fmt) -> str:
        return f"{fmt(min(values))} .. {fmt(max(values))}"

    for mode in ("off", "on"):
        run.figure(f"metrics {mode}: echo p50 min..max over rounds", spread(p50s[mode], millis))
        run.figure(f"metrics {mode}: HTTP req/s min..max over rounds", spread(rates[mode], lambda r: f"{r:,.0f}"))
    run.compare(
        "WS echo p50, median of rounds (on vs off)",
        statistics.median(p50s["on"]),
        statistics.median(p50s["off"]),
        millis,
        Target(1.05),
    )
    run.compare(
        "HTTP req/s, median of rounds (on vs off)",
        statistics.median(rates["on"]),
        statistics.median(rates["off"]),
        lambda r: f"{r:,.0f} req/s",
        Target(0.95, at_least=True),
    )


def parse_args():
    parser = benchmark_parser(__doc__, "3 rounds of 300 echoes and 3 s of HTTP (default 5 x 1,000 and 5 s)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per mode (default 5; --quick 3)")
    parser.add_argument("--echoes", type=int, default=None, help="sequential echoes per round (default 1000)")
    parser.add_argument("--http-seconds", type=int, default=None, help="seconds of HTTP load per round (default 5)")
    parser.add_argument("--http-client", choices=["auto", "wrk", "asyncio"], default="auto")
    args = parser.parse_args()
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.echoes = args.echoes or (300 if args.quick else 1000)
    args.http_seconds = args.http_seconds or (3 if args.quick else 5)
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
    print(
        f"{args.rounds} rounds x ({args.echoes} sequential echoes + {args.http_seconds} s of HTTP at"
        f" {HTTP_CONNECTIONS} connections) per mode, modes taking turns",
        flush=True,
    )

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
