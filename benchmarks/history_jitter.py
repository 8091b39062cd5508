"""The jitter test of group history: many clients resume a group stream while a third of them keep dropping.

    python benchmarks/history_jitter.py [--quick] [--redis-url URL] [--clients N] [--seconds S]

Starts the test project (interface-server + runworker over Redis, the group
`hist-jitter` keeping history) and N WebSocket clients (default 1,000) that
speak the WebSocketBridge's protocol (tests/project/app/history_consumers.py
joins them with `@resume_groups`): each remembers the last position it saw
and reconnects with `?since=GROUP:EPOCH:OFFSET`. A broadcast goes to the group
every 200 ms for S seconds (default 60); every `--period` seconds (default
15) a random third of the clients lose their TCP connection (the socket is
aborted, no close frame) and reconnect 2 s later. Prints, per client and in
total: messages delivered against sent, out of order, duplicates, gaps,
`recovered: false` statuses, and the replay time (from the reconnection
attempt to the status frame that follows the replayed messages) p50/p99/max.

Targets (issue 18): 100% delivered, in order, 0 duplicates, replay p99 < 2 s.
`--quick`: 60 clients, 7 s, a drop every 1.5 s (what the default test suite runs).

The client logic (`run_jitter`) is what tests/stack/test_history_jitter.py runs too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

GROUP = "hist-jitter"
PATH = "/history/jitter/"


@dataclass
class JitterClient:
    """What one client saw."""

    offsets: list[int] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)  # the broadcast's own counter, to check the text too
    position: tuple[str, int] | None = None
    epochs: set[str] = field(default_factory=set)
    not_recovered: int = 0
    cuts: int = 0
    unexpected_drops: int = 0
    replay_times: list[float] = field(default_factory=list)
    handshake_times: list[float] = field(default_factory=list)  # reconnection attempt to the open socket
    connect_errors: int = 0


@dataclass
class JitterResult:
    clients: list[JitterClient]
    sent: int
    seconds: float
    cut_rounds: int

    def figures(self) -> dict[str, Any]:
        expected = list(range(1, self.sent + 1))
        delivered = sum(len(c.offsets) for c in self.clients)
        duplicates = sum(len(c.offsets) - len(set(c.offsets)) for c in self.clients)
        out_of_order = sum(
            sum(1 for a, b in zip(c.offsets, c.offsets[1:], strict=False) if b <= a) for c in self.clients
        )
        missing = sum(len(set(expected) - set(c.offsets)) for c in self.clients)
        text_mismatch = sum(1 for c in self.clients if c.numbers != c.offsets)
        replays = sorted(t for c in self.clients for t in c.replay_times)
        handshakes = sorted(t for c in self.clients for t in c.handshake_times)
        return {
            "clients": len(self.clients),
            "broadcasts": self.sent,
            "seconds": round(self.seconds, 1),
            "cut_rounds": self.cut_rounds,
            "cuts": sum(c.cuts for c in self.clients),
            "expected": self.sent * len(self.clients),
            "delivered": delivered,
            "complete_clients": sum(1 for c in self.clients if c.offsets == expected),
            "missing": missing,
            "duplicates": duplicates,
            "out_of_order": out_of_order,
            "text_mismatch": text_mismatch,
            "not_recovered": sum(c.not_recovered for c in self.clients),
            "epochs": len({e for c in self.clients for e in c.epochs}),
            "unexpected_drops": sum(c.unexpected_drops for c in self.clients),
            "connect_errors": sum(c.connect_errors for c in self.clients),
            "replays": len(replays),
            "replay_p50_s": round(statistics.median(replays), 3) if replays else None,
            "replay_p99_s": round(_p99(replays), 3) if replays else None,
            "replay_max_s": round(replays[-1], 3) if replays else None,
            "handshake_p50_s": round(statistics.median(handshakes), 3) if handshakes else None,
            "handshake_p99_s": round(_p99(handshakes), 3) if handshakes else None,
        }


def _p99(samples: list[float]) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


class _Run:
    def __init__(self, ws_url: str, count: int, outage: float) -> None:
        self.ws_url = ws_url
        self.clients = [JitterClient() for _ in range(count)]
        self.sockets: list[Any] = [None] * count
        self.cut_now = [False] * count
        self.outage = outage
        self.stopping = False
        self.connected = 0
        self.all_connected = asyncio.Event()

    def url(self, client: JitterClient) -> str:
        if client.position is None:
            return self.ws_url + PATH
        since = quote(f"{GROUP}:{client.position[0]}:{client.position[1]}", safe="")
        return f"{self.ws_url}{PATH}?since={since}"

    async def client(self, i: int, gate: asyncio.Semaphore) -> None:
        state = self.clients[i]
        first = True
        while not self.stopping:
            started = time.monotonic()
            resuming = state.position is not None
            try:
                if first:
                    async with gate:
                        ws = await connect(self.url(state), open_timeout=30, ping_interval=None, max_queue=None)
                else:
                    ws = await connect(self.url(state), open_timeout=30, ping_interval=None, max_queue=None)
            except Exception:
                state.connect_errors += 1
                await asyncio.sleep(0.2)
                continue
            self.sockets[i] = ws
            if resuming:
                state.handshake_times.append(time.monotonic() - started)
            try:
                async for raw in ws:
                    frame = json.loads(raw)
                    history = frame["history"]
                    state.epochs.add(history["epoch"])
                    if "recovered" in history:
                        if first:
                            first = False
                            self.connected += 1
                            if self.connected == len(self.clients):
                                self.all_connected.set()
                        elif resuming:
                            state.replay_times.append(time.monotonic() - started)
                        if not history["recovered"]:
                            state.not_recovered += 1
                    else:
                        state.offsets.append(history["offset"])
                        state.numbers.append(json.loads(frame["text"])["n"])
                    state.position = (history["epoch"], history["offset"])
            except ConnectionClosed:
                pass
            self.sockets[i] = None
            if self.cut_now[i]:
                self.cut_now[i] = False
                await asyncio.sleep(self.outage)  # the 2 s without a network
            elif not self.stopping:
                state.unexpected_drops += 1

    def cut(self, fraction: float) -> int:
        """Abort the TCP connection of a random `fraction` of the connected clients (no close frame)."""
        connected = [i for i, ws in enumerate(self.sockets) if ws is not None and not self.cut_now[i]]
        chosen = random.sample(connected, int(len(connected) * fraction))
        for i in chosen:
            self.cut_now[i] = True
            self.clients[i].cuts += 1
            self.sockets[i].transport.abort()
        return len(chosen)


def run_jitter(
    ws_url: str,
    send: Any,
    clients: int = 1000,
    seconds: float = 60.0,
    interval: float = 0.2,
    period: float = 15.0,
    outage: float = 2.0,
    fraction: float = 1 / 3,
    settle: float = 30.0,
    log: Any = print,
) -> JitterResult:
    """Run the load against a server at `ws_url`; `send(n)` broadcasts message n to the group (any thread)."""

    async def main() -> JitterResult:
        run = _Run(ws_url, clients, outage)
        gate = asyncio.Semaphore(50)
        tasks = [asyncio.create_task(run.client(i, gate)) for i in range(clients)]
        await asyncio.wait_for(run.all_connected.wait(), timeout=120)
        log(f"{clients} clients connected; broadcasting every {interval}s for {seconds}s")
        loop = asyncio.get_running_loop()
        sent = 0
        cut_rounds = 0
        start = time.monotonic()
        next_cut = start + period
        while time.monotonic() - start < seconds:
            sent += 1
            await loop.run_in_executor(None, send, sent)
            now = time.monotonic()
            if now >= next_cut and now - start < seconds - outage:
                cut_rounds += 1
                log(f"{now - start:5.1f}s: cut {run.cut(fraction)} clients for {outage}s")
                next_cut += period
            await asyncio.sleep(max(0.0, start + sent * interval - time.monotonic()))
        elapsed = time.monotonic() - start
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and any(len(c.offsets) < sent for c in run.clients):
            await asyncio.sleep(0.1)
        run.stopping = True
        for ws in run.sockets:
            if ws is not None:
                await ws.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return JitterResult(run.clients, sent, elapsed, cut_rounds)

    return asyncio.run(main())


def check(figures: dict[str, Any], replay_p99_target: float = 2.0) -> list[str]:
    """What misses issue 18's targets (empty: all met)."""
    failures = []
    if figures["delivered"] != figures["expected"] or figures["complete_clients"] != figures["clients"]:
        failures.append(f"delivered {figures['delivered']} of {figures['expected']}")
    for key in ("missing", "duplicates", "out_of_order", "text_mismatch", "not_recovered", "unexpected_drops"):
        if figures[key]:
            failures.append(f"{key}: {figures[key]}")
    if figures["cut_rounds"] and figures["replays"] < figures["cuts"]:
        failures.append(f"{figures['replays']} replays for {figures['cuts']} cuts")
    if figures["replay_p99_s"] is not None and figures["replay_p99_s"] >= replay_p99_target:
        failures.append(f"replay p99 {figures['replay_p99_s']} s >= {replay_p99_target} s")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--quick", action="store_true", help="60 clients, 7 s, a drop every 1.5 s")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--period", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=2, help="runworker processes")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds, args.period = 60, 7.0, 1.5
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    import tempfile
    import uuid

    from channels_core.layers import RedisChannelLayer
    from tests.stack.harness import Stack

    prefix = f"jitter{uuid.uuid4().hex[:8]}:"
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(args.redis_url, prefix, Path(tmp), {"TEST_LAYER_CAPACITY": "100000"})
        layer = RedisChannelLayer(
            hosts=[args.redis_url], prefix=prefix, group_history={"hist-*": {"size": 1000, "ttl": 300}}
        )
        try:
            stack.start_server()
            for _ in range(args.workers):
                stack.start_worker("--threads", "2")
            figures, failures = jitter_with(stack.ws_url, layer, args.clients, args.seconds, args.period)
        finally:
            stack.stop()
            layer.flush()
            layer.close()
    print(json.dumps(figures, indent=2))
    print("targets met" if not failures else "targets MISSED: " + "; ".join(failures))
    return 0 if not failures else 1


def jitter_with(ws_url: str, layer: Any, clients: int, seconds: float, period: float, **options: Any):
    """`run_jitter` broadcasting through `layer` (what an app's Group.send does): (figures, failures)."""
    lock = threading.Lock()

    def send(n: int) -> None:
        with lock:
            layer.send_group(GROUP, {"text": json.dumps({"n": n})})

    result = run_jitter(ws_url, send, clients=clients, seconds=seconds, period=period, **options)
    figures = result.figures()
    figures["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return figures, check(figures)


if __name__ == "__main__":
    sys.exit(main())
