"""Benchmark IPCChannelLayer against RedisChannelLayer and raw posix_ipc, in one run on one machine.

    python benchmarks/ipc_bench.py [--redis-url URL] [--quick]

1. throughput: `send` then `receive` of 100-byte messages in rounds of 10
   (the raw floor, a POSIX message queue, holds at most 10 by default),
   the three taking turns chunk by chunk so load on the machine hits all alike;
2. cross-process one-way latency (ping-pong round trip / 2) against an echo
   process parked in a blocking receive: layer `send` + `receive(block=True)`,
   raw `mq_send` + blocking `mq_receive`;
3. with `--echo`: the WebSocket echo round trip through the whole stack, an
   interface-server plus one `runworker` per layer serving the test project's
   /ws/echo/ consumer, 1 client, sequential 100-byte messages, the two stacks
   taking turns message by message.

Targets from issue 16: IPC throughput at least 2x Redis's; IPC p50 below
Redis's. Every object the run creates is removed at the end.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import posix_ipc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import benchmark_parser, percentile  # noqa: E402

from channels_core.layers.ipc import IPCChannelLayer  # noqa: E402
from channels_core.layers.ipc.layer import flush_prefix  # noqa: E402
from channels_core.layers.redis import RedisChannelLayer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROUND = 10
IPC_SETTINGS = """
import os

from tests.project.settings import *  # noqa

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_core.layers.ipc.IPCChannelLayer",
        "CONFIG": {"prefix": os.environ["BENCH_IPC_PREFIX"]},
        "ROUTING": "tests.project.routing.channel_routing",
    },
}
"""
PING, PONG = "bench.ping", "bench.pong"
MESSAGE = {"text": "x" * 88}  # 100 bytes serialized


class Layer:
    def __init__(self, layer) -> None:
        self.layer = layer

    def send(self, channel: str, value: int) -> None:
        self.layer.send(channel, dict(MESSAGE, n=value))

    def recv(self, channel: str, block: bool = True) -> int | None:
        _, message = self.layer.receive([channel], block)
        return None if message is None else message["n"]

    def close(self) -> None:
        self.layer.close()


class RawQueue:
    """posix_ipc message queues, one per channel: the floor of any queue between two processes."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.queues: dict[str, posix_ipc.MessageQueue] = {}
        self.payload = b"x" * 100

    def _queue(self, channel: str) -> posix_ipc.MessageQueue:
        if channel not in self.queues:
            self.queues[channel] = posix_ipc.MessageQueue(f"/{self.prefix}.{channel}", posix_ipc.O_CREAT)
        return self.queues[channel]

    def send(self, channel: str, value: int) -> None:
        self._queue(channel).send(value.to_bytes(8, "big", signed=True) + self.payload)

    def recv(self, channel: str, block: bool = True) -> int | None:
        try:
            data, _ = self._queue(channel).receive(5 if block else 0)
        except posix_ipc.BusyError:
            return None
        return int.from_bytes(data[:8], "big", signed=True)

    def close(self) -> None:
        for queue in self.queues.values():
            queue.close()

    def unlink(self) -> None:
        for channel in ("bench.tp", PING, PONG):
            try:
                posix_ipc.unlink_message_queue(f"/{self.prefix}.{channel}")
            except posix_ipc.ExistentialError:
                pass


def make(kind: str, redis_url: str, prefix: str):
    if kind == "ipc":
        return Layer(IPCChannelLayer(prefix=prefix, capacity=1000))
    if kind == "redis":
        return Layer(RedisChannelLayer(hosts=[redis_url], prefix=prefix + ":", capacity=1000))
    return RawQueue(prefix)


def echo(kind: str, redis_url: str, prefix: str) -> None:
    transport = make(kind, redis_url, prefix)
    idle = 0
    while idle < 3:
        seq = transport.recv(PING)
        if seq is None:
            idle += 1
            continue
        if seq < 0:
            break
        transport.send(PONG, seq)
    transport.close()


def throughput(transports: dict, messages: int) -> dict[str, float]:
    spent = dict.fromkeys(transports, 0.0)
    for _ in range(messages // ROUND // 10):
        for kind, transport in transports.items():
            start = time.perf_counter()
            for _ in range(10):
                for i in range(ROUND):
                    transport.send("bench.tp", i)
                for i in range(ROUND):
                    if transport.recv("bench.tp", False) != i:
                        raise RuntimeError(f"{kind}: message {i} missing")
            spent[kind] += time.perf_counter() - start
    return {kind: messages / took for kind, took in spent.items()}


def latency(kinds: list[str], redis_url: str, prefixes: dict, samples: int) -> dict[str, list[float]]:
    spawn = multiprocessing.get_context("spawn")
    partners, processes = {}, []
    for kind in kinds:
        process = spawn.Process(target=echo, args=(kind, redis_url, prefixes[kind]), daemon=True)
        process.start()
        processes.append(process)
        partners[kind] = make(kind, redis_url, prefixes[kind])
        partners[kind].send(PING, 0)
        if partners[kind].recv(PONG) != 0:
            raise RuntimeError(f"{kind}: no echo")
    got: dict[str, list[float]] = {kind: [] for kind in kinds}
    for seq in range(1, samples + 21):
        for kind, transport in partners.items():
            time.sleep(0.001)  # the echo side is parked in its blocking receive
            start = time.perf_counter()
            transport.send(PING, seq)
            if transport.recv(PONG) != seq:
                raise RuntimeError(f"{kind}: ping {seq} lost")
            if seq > 20:
                got[kind].append((time.perf_counter() - start) / 2)
    for transport in partners.values():
        transport.send(PING, -1)
        transport.close()
    for process in processes:
        process.join(10)
    return got


@contextlib.contextmanager
def stack(kind: str, redis_url: str, prefix: str, tmpdir: str):
    """An interface-server and a runworker of the test project on `kind`'s layer; yields the port."""
    from channels_core.test.processes import ChildProcess, free_port

    env = dict(os.environ, PYTHONPATH=f"{tmpdir}{os.pathsep}{ROOT}", TEST_DB_PATH=os.path.join(tmpdir, "db.sqlite3"))
    if kind == "ipc":
        Path(tmpdir, "ipcbench_settings.py").write_text(IPC_SETTINGS)
        env.update(DJANGO_SETTINGS_MODULE="ipcbench_settings", BENCH_IPC_PREFIX=prefix)
    else:
        env.update(DJANGO_SETTINGS_MODULE="tests.project.settings", TEST_REDIS_URL=redis_url, TEST_LAYER_PREFIX=prefix)
    port = free_port()
    server = ChildProcess(
        [sys.executable, "-m", "interface_server", "tests.project.asgi:channel_layer", "-p", str(port), "-v", "0"],
        label=f"interface-server-{kind}",
        cwd=ROOT,
        env=env,
    )
    worker = ChildProcess([sys.executable, "-m", "django", "runworker"], label=f"worker-{kind}", cwd=ROOT, env=env)
    try:
        server.wait_for_port(port, timeout=30)
        worker.wait_for("Listening on channels", 30)
        yield port
    finally:
        for process in (server, worker):
            process.stop()
            process.close()


def websocket_echo(redis_url: str, prefixes: dict, samples: int) -> dict[str, list[float]]:
    from websockets.sync.client import connect

    got: dict[str, list[float]] = {"ipc": [], "redis": []}
    with tempfile.TemporaryDirectory() as tmpdir, contextlib.ExitStack() as stacks:
        sockets = {}
        for kind in got:
            port = stacks.enter_context(
                stack(kind, redis_url, prefixes[kind] + ("echo:" if kind == "redis" else ""), tmpdir)
            )
            sockets[kind] = stacks.enter_context(
                connect(f"ws://127.0.0.1:{port}/ws/echo/", compression=None, proxy=None, open_timeout=30)
            )
        text = "x" * 100
        for n in range(samples + 20):
            for kind, ws in sockets.items():
                start = time.perf_counter()
                ws.send(text)
                if ws.recv(timeout=10) != text:
                    raise RuntimeError(f"{kind}: the echo differs")
                if n >= 20:
                    got[kind].append(time.perf_counter() - start)
    return got


def main() -> None:
    parser = benchmark_parser(__doc__, "fewer messages and samples (a smoke run)")
    parser.add_argument("--echo", action="store_true", help="also the WebSocket echo through the whole stack")
    args = parser.parse_args()
    messages, samples = (2_000, 200) if args.quick else (20_000, 1_000)
    run = uuid.uuid4().hex[:8]
    prefixes = {"ipc": f"bench{run}", "redis": f"bench{run}", "raw": f"bench{run}raw"}
    kinds = ["ipc", "redis", "raw"]
    transports = {kind: make(kind, args.redis_url, prefixes[kind]) for kind in kinds}
    try:
        transports["redis"].layer.flush()
        rates = throughput(transports, messages)
        for transport in transports.values():
            transport.close()
        waits = latency(kinds, args.redis_url, prefixes, samples)
        echoes = websocket_echo(args.redis_url, prefixes, samples) if args.echo else {}
    finally:
        flush_prefix(prefixes["ipc"])
        for redis_prefix in (prefixes["redis"] + ":", prefixes["redis"] + "echo:"):
            cleanup = RedisChannelLayer(hosts=[args.redis_url], prefix=redis_prefix)
            cleanup.flush()
            cleanup.close()
        RawQueue(prefixes["raw"]).unlink()
    print(f"{time.strftime('%Y-%m-%d %H:%M')} UTC, {messages} messages of 100 bytes, {samples} ping-pongs")
    print(f"{'':8}{'send+receive /s':>18}{'one-way p50':>14}{'p90':>10}{'p99':>10}")
    for kind in kinds:
        p = [percentile(waits[kind], q) * 1e6 for q in (50, 90, 99)]
        print(f"{kind:8}{rates[kind]:>18,.0f}{p[0]:>11.0f} us{p[1]:>7.0f} us{p[2]:>7.0f} us")
    ratio = rates["ipc"] / rates["redis"]
    p50 = {kind: statistics.median(waits[kind]) for kind in kinds}
    print(f"IPC / Redis throughput: {ratio:.2f}x (target >= 2x) {'met' if ratio >= 2 else 'MISSED'}")
    print(
        f"IPC / Redis one-way p50: {p50['ipc'] / p50['redis']:.2f} (target < 1) "
        f"{'met' if p50['ipc'] < p50['redis'] else 'MISSED'}"
    )
    print(f"IPC / raw posix_ipc: throughput {rates['ipc'] / rates['raw']:.2f}, p50 {p50['ipc'] / p50['raw']:.2f}x")
    for kind, rtts in echoes.items():
        p = [percentile(rtts, q) * 1e3 for q in (50, 90, 99)]
        print(f"WebSocket echo via a worker on {kind:5}: p50 {p[0]:.2f} ms, p90 {p[1]:.2f} ms, p99 {p[2]:.2f} ms")


if __name__ == "__main__":
    main()
