"""Benchmark permessage-deflate: a 2 KB JSON group message to 1,000 WebSockets, compression off / per socket / once.

    python benchmarks/compression_bench.py [--quick] [--redis-url URL] [--level N] [--no-context-takeover]

One run, one interface-server subprocess per mode, each on a fresh port and
Redis layer prefix, the same clients and the same messages:

- off: the server without `--ws-compression` (clients still offer it);
- per-socket: `--ws-compression --ws-compression-per-socket`: each socket's
  copy goes through that socket's own deflate stream;
- once: `--ws-compression` (the default): a message that several sockets
  get is deflated once per server and the same frame written to each.

The clients offer `permessage-deflate; client_max_window_bits` (what
Chromium offers) and keep their inflate window between messages; the
server keeps context per socket unless `--no-context-takeover` is given
(then every mode runs with `--ws-compression-no-context-takeover`). This
process plays the worker (accepts every socket, adds it to the group),
sends each broadcast with `send_group` once every socket has the previous
one, and reads every frame on raw sockets: each one is checked (inflated
with the socket's own window) and its wire bytes counted. The server's CPU
is the user+system time of its process (/proc/PID/stat) across the
measured broadcasts; bytes are what the clients read during them; memory
is the server's RSS once they are done (per-socket deflate streams show).

Targets: once-per-server uses at least 3x less server CPU than per-socket,
and sends at most 10% more bytes than per-socket. --quick (50 sockets, a
few broadcasts) is a smoke run for the tests; its figures mean little.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import selectors
import socket
import struct
import sys
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import redis
from common import benchmark_parser
from harness import BENCH_DIR, ROOT, Child, Run, Target, execute, free_port, raise_fd_limit, stop_on_signals
from interface_bench_layer import NAME_ENV, OPTIONS_ENV, PREFIX_ENV, URL_ENV, make_layer

LAYER_PATH = "interface_bench_layer:channel_layer"
LAYER_OPTIONS = {"capacity": 10_000}  # every socket's websocket.connect waits on one channel at once
MESSAGE_SIZE = 2048
OFFER = "permessage-deflate; client_max_window_bits"
CHUNK = 100  # handshakes in flight at once
WARMUP = 3  # broadcasts before the measured ones
TIMEOUT = 60.0
MODES = {
    "off": [],
    "per-socket": ["--ws-compression", "--ws-compression-per-socket"],
    "once": ["--ws-compression"],
}
CPU_TARGET = Target(3.0, at_least=True)  # per-socket CPU / once CPU
BYTES_TARGET = Target(1.10)  # once bytes / per-socket bytes
MIN_CPU = 0.2  # seconds of server CPU below which the clock ticks (10 ms) make a ratio meaningless


@dataclass(frozen=True)
class Sizes:
    sockets: int
    broadcasts: int


FULL = Sizes(sockets=1000, broadcasts=60)
QUICK = Sizes(sockets=50, broadcasts=5)

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa".split()


def messages(count: int, seed: int = 18) -> list[str]:
    """`count` different JSON messages of `MESSAGE_SIZE` bytes, shaped like a chat room's update."""
    rng = random.Random(seed)
    out = []
    for seq in range(count):
        body: dict = {"type": "room.update", "room": "lobby", "seq": seq, "events": []}
        while True:
            event = {
                "id": rng.randrange(10**9),
                "user": f"{rng.choice(WORDS)}_{rng.randrange(1000)}",
                "at": 1_796_000_000 + rng.randrange(10**6),
                "text": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(4, 12))),
            }
            candidate = json.dumps({**body, "events": body["events"] + [event]})
            if len(candidate) > MESSAGE_SIZE:
                break
            body["events"].append(event)
        text = json.dumps(body)
        out.append(text + " " * (MESSAGE_SIZE - len(text)))  # JSON allows trailing whitespace
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss(pid: int) -> int:
    """Resident memory of process `pid`, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Client:
    """One raw WebSocket client: reads frames, inflates compressed ones with its own window, counts bytes."""

    __slots__ = ("sock", "buffer", "received", "wire_bytes", "inflater", "compressed", "port", "key")

    def __init__(self, port: int, offer: bool) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buffer = bytearray()
        self.received: list[bytes] = []
        self.wire_bytes = 0
        self.compressed = 0
        self.inflater = zlib.decompressobj(-15)
        self.key = base64.b64encode(os.urandom(16))
        extension = f"Sec-WebSocket-Extensions: {OFFER}\r\n".encode() if offer else b""
        self.sock.sendall(
            b"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n" % (port, self.key, extension)
        )

    def read_upgrade(self) -> str:
        """Wait for the 101; returns the extension the server chose ('' for none)."""
        while b"\r\n\r\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed during the handshake: {bytes(self.buffer)!r}")
            self.buffer += data
        head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
        self.buffer = bytearray(rest)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head!r}")
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-extensions":
                return value.strip()
        return ""

    def on_readable(self) -> None:
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("the server closed a socket during the run")
        self.wire_bytes += len(data)
        self.buffer += data
        buffer = self.buffer
        while len(buffer) >= 2:
            first, size = buffer[0], buffer[1] & 0x7F
            offset = 2
            if size == 126:
                if len(buffer) < 4:
                    return
                size, offset = struct.unpack_from("!H", buffer, 2)[0], 4
            elif size == 127:
                if len(buffer) < 10:
                    return
                size, offset = struct.unpack_from("!Q", buffer, 2)[0], 10
            if len(buffer) < offset + size:
                return
            payload = bytes(buffer[offset : offset + size])
            del buffer[: offset + size]
            opcode = first & 0x0F
            if opcode not in (0x1, 0x2):
                raise ConnectionError(f"unexpected frame opcode {opcode} (close, ping?) during the run")
            if first & 0x40:
                self.compressed += 1
                payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
            self.received.append(payload)


@dataclass
class ModeResult:
    mode: str
    extension: str
    cpu: float  # server CPU seconds over the measured broadcasts
    wire_bytes: int  # bytes the clients read over them
    compressed_share: float
    seconds: float
    rss_kb: int  # the server's resident memory once the broadcasts are done


def child_env(run: Run, prefix: str) -> dict[str, str]:
    pythonpath = os.pathsep.join([str(ROOT), str(BENCH_DIR), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return dict(
        os.environ,
        PYTHONPATH=pythonpath,
        **{
            PREFIX_ENV: prefix,
            URL_ENV: run.args.redis_url,
            OPTIONS_ENV: json.dumps(LAYER_OPTIONS),
            NAME_ENV: "cbench-interface-server",
        },
    )


def run_mode(run: Run, mode: str, texts: list[str]) -> ModeResult:
    sizes = run.sizes
    prefix = f"{run.prefix}{mode.replace('-', '')}:"
    port = free_port()
    flags = list(MODES[mode])
    if run.args.level is not None and flags:
        flags += ["--ws-compression-level", str(run.args.level)]
    if run.args.no_context_takeover and flags:
        flags += ["--ws-compression-no-context-takeover"]
    argv = [sys.executable, "-m", "interface_server", LAYER_PATH, "-p", str(port), "-v", "0"]
    argv += ["--ping-interval", "600", "--ping-timeout", "600", *flags]
    server = Child(run, f"interface-server ({mode})", argv, child_env(run, prefix))
    server.wait_for_port(port, timeout=20)
    layer = make_layer(run.args.redis_url, prefix, "cbench-worker", {**LAYER_OPTIONS, "blocking_timeout": 1})
    group = "cbench-room"
    clients: list[Client] = []
    extensions: set[str] = set()
    try:
        while len(clients) < sizes.sockets:
            batch = [Client(port, offer=True) for _ in range(min(CHUNK, sizes.sockets - len(clients)))]
            accepted = 0
            deadline = time.monotonic() + TIMEOUT
            while accepted < len(batch):
                if time.monotonic() > deadline:
                    raise TimeoutError("the server did not send every websocket.connect")
                for _, message in layer.receive_batch(["websocket.connect"], 100, block=True):
                    layer.send(message["reply_channel"], {"accept": True})
                    layer.group_add(group, message["reply_channel"])
                    accepted += 1
            extensions.update(client.read_upgrade() for client in batch)
            clients += batch
        selector = selectors.DefaultSelector()
        for client in clients:
            client.sock.setblocking(False)
            selector.register(client.sock, selectors.EVENT_READ, client)

        def broadcast(text: str, expected: int) -> None:
            layer.send_group(group, {"text": text})
            waiting = len(clients)
            deadline = time.monotonic() + TIMEOUT
            while waiting:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{waiting} sockets did not get broadcast {expected} within {TIMEOUT:g}s")
                for key, _ in selector.select(1.0):
                    client = key.data
                    before = len(client.received)
                    client.on_readable()
                    if before < expected <= len(client.received):
                        waiting -= 1

        for i in range(WARMUP):
            broadcast(texts[i], i + 1)
        for client in clients:
            client.wire_bytes = 0
            client.compressed = 0
        cpu_before, started = cpu_seconds(server.pid), time.monotonic()
        for i in range(WARMUP, WARMUP + sizes.broadcasts):
            broadcast(texts[i], i + 1)
        cpu, seconds = cpu_seconds(server.pid) - cpu_before, time.monotonic() - started
        rss_kb = rss(server.pid)
        wanted = [t.encode() for t in texts[: WARMUP + sizes.broadcasts]]
        wrong = sum(client.received != wanted for client in clients)
        if wrong:
            raise AssertionError(f"{mode}: {wrong} sockets did not receive exactly the messages sent")
        frames = sizes.sockets * sizes.broadcasts
        return ModeResult(
            mode,
            " | ".join(sorted(e or "(none)" for e in extensions)),
            cpu,
            sum(c.wire_bytes for c in clients),
            sum(c.compressed for c in clients) / frames,
            seconds,
            rss_kb,
        )
    finally:
        for client in clients:
            client.sock.close()
        server.stop()
        layer.flush()
        layer.close()


def report(run: Run, results: dict[str, ModeResult]) -> None:
    frames = run.sizes.sockets * run.sizes.broadcasts
    for result in results.values():
        run.figure(
            f"{result.mode}: server CPU per broadcast to {run.sizes.sockets} sockets",
            f"{result.cpu / run.sizes.broadcasts * 1e3:.1f} ms ({result.cpu / frames * 1e6:.1f} us per socket)",
        )
        run.figure(
            f"{result.mode}: bytes on the wire per socket per message",
            f"{result.wire_bytes / frames:.0f} B ({result.compressed_share:.0%} of frames compressed)",
        )
        run.figure(f"{result.mode}: server memory (RSS) after the broadcasts", f"{result.rss_kb / 1024:.0f} MiB")
        run.notes.append(f"{result.mode}: negotiated {result.extension}; {result.seconds:.1f} s for the broadcasts")
    once, per_socket, off = results["once"], results["per-socket"], results["off"]
    if min(once.cpu, off.cpu) < MIN_CPU:
        # A few clock ticks: no ratio worth printing (a --quick run).
        run.figure("server CPU: per-socket / once", f"too little CPU to compare (under {MIN_CPU:g} s)")
    else:
        run.compare("server CPU: per-socket / once", per_socket.cpu, once.cpu, lambda v: f"{v:.2f} s", CPU_TARGET)
        run.compare("server CPU: once / off", once.cpu, off.cpu, lambda v: f"{v:.2f} s", None)
    run.compare(
        "bytes: once / per-socket", once.wire_bytes, per_socket.wire_bytes, lambda v: f"{v:,.0f} B", BYTES_TARGET
    )
    run.compare("bytes: once / off", once.wire_bytes, off.wire_bytes, lambda v: f"{v:,.0f} B", None)


def parse_args() -> argparse.Namespace:
    parser = benchmark_parser(__doc__, "50 sockets and 5 broadcasts: a smoke run (for the tests)")
    parser.add_argument("--level", type=int, default=None, help="--ws-compression-level for the server (default 6)")
    parser.add_argument(
        "--no-context-takeover",
        action="store_true",
        help="run the compressing modes with --ws-compression-no-context-takeover",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    sizes = QUICK if args.quick else FULL
    stop_on_signals()
    raise_fd_limit(sizes.sockets + 100, f"{sizes.sockets} WebSockets")
    run = Run(args, sizes, f"cbench{uuid.uuid4().hex[:8]}:", redis.Redis.from_url(args.redis_url))
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {sizes.sockets} sockets, {sizes.broadcasts} broadcasts "
        f"of {MESSAGE_SIZE} B JSON per mode, level {args.level if args.level is not None else 'default (6)'}, "
        f"{'no ' if args.no_context_takeover else ''}context takeover; {os.cpu_count()} CPUs",
        flush=True,
    )
    texts = messages(WARMUP + sizes.broadcasts)
    results: dict[str, ModeResult] = {}

    def work() -> None:
        for mode in MODES:
            print(f"{mode} ...", flush=True)
            results[mode] = run_mode(run, mode, texts)
        report(run, results)

    return execute(run, work, "baseline", lambda: run.client.close())


if __name__ == "__main__":
    sys.exit(main())
