"""What a socket costs over the fallback transports: echo round trips and a burst, WebSocket vs SSE + POST vs polling.

One `interface-server` on the in-memory layer with its echo application in
the same process (tests/interface_server/inmemory_echo.py: no Redis, no
worker, so the figures are the transports' own), and one client per
transport speaking the wire protocol of docs/topics/fallback-transports.md
with `http.client` on kept-alive connections (as a browser's `fetch` and
`EventSource` do):

- round trip: one frame sent, its echo read, one after another (p50, p99);
- burst: `--burst` frames sent as fast as the transport takes them (one
  POST per 100 frames for the fallbacks, the next once the last is
  answered), every echo read: frames per second.

    python3 benchmarks/fallback_bench.py [--rounds 500] [--burst 2000] [--quick]
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import benchmark_parser, columns, percentile  # noqa: E402
from channels_core.test.processes import ChildProcess, free_port  # noqa: E402

PREFIX = "/_channels/"
BATCH = 100


def kept_alive(port: int, timeout: float) -> http.client.HTTPConnection:
    """A connection with TCP_NODELAY, as browsers use: http.client writes a request's head and body apart."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


class SSE:
    """SSE + POST: the event stream on one connection, POSTs on another (kept alive)."""

    name = "sse"

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(f"GET {PREFIX}sse/bench/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        self.reader = self.sock.makefile("rb")
        while self.reader.readline().strip():  # the head
            pass
        self.session = json.loads(self._event())["session"]
        self.posts = kept_alive(port, 30)
        self.seq = 0

    def _event(self) -> bytes:
        """The data of the next event (chunk-size lines and comments skipped: events are whole lines)."""
        data = b""
        while True:
            line = self.reader.readline()
            if line.startswith(b"data: "):
                data = line[6:].strip()
            elif line == b"\n" and data:
                return data

    def send(self, texts: list[str]) -> None:
        self.seq += 1
        body = json.dumps({"seq": self.seq, "frames": [{"text": t} for t in texts]})
        self.posts.request("POST", f"{PREFIX}s/{self.session}/send", body)
        response = self.posts.getresponse()
        response.read()
        assert response.status == 204, response.status

    def receive(self, count: int) -> list[str]:
        return [json.loads(self._event())["text"] for _ in range(count)]

    def close(self) -> None:
        self.posts.request("POST", f"{PREFIX}s/{self.session}/close", "{}")
        self.posts.getresponse().read()
        self.posts.close()
        self.sock.close()


class Poll(SSE):
    """Long-polling: polls on one kept-alive connection, POSTs on another."""

    name = "poll"

    def __init__(self, port: int) -> None:
        self.polls = kept_alive(port, 60)
        self.polls.request("GET", f"{PREFIX}poll/bench/")
        self.session = json.loads(self.polls.getresponse().read())["session"]
        self.posts = kept_alive(port, 30)
        self.seq = 0
        self.ack = 0
        self.waiting: list[str] = []

    def receive(self, count: int) -> list[str]:
        while len(self.waiting) < count:
            self.polls.request("GET", f"{PREFIX}s/{self.session}/poll?ack={self.ack}")
            events = json.loads(self.polls.getresponse().read())["events"]
            for event in events:
                self.ack = event["id"]
                self.waiting.append(event["text"])
        got, self.waiting = self.waiting[:count], self.waiting[count:]
        return got

    def close(self) -> None:
        self.posts.request("POST", f"{PREFIX}s/{self.session}/close", "{}")
        self.posts.getresponse().read()
        self.posts.close()
        self.polls.close()


class WebSocket:
    name = "websocket"

    def __init__(self, port: int) -> None:
        from websockets.sync.client import connect

        url = f"ws://127.0.0.1:{port}/bench/"
        self.ws = connect(url, compression=None, max_size=None, ping_interval=None, proxy=None, legacy=True)
        self.ws.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, texts: list[str]) -> None:
        for text in texts:
            self.ws.send(text)

    def receive(self, count: int) -> list[str]:
        return [self.ws.recv(timeout=30) for _ in range(count)]

    def close(self) -> None:
        self.ws.close()


def measure(kind: type, port: int, rounds: int, burst: int) -> dict:
    client = kind(port)
    try:
        for i in range(20):  # warm-up
            client.send([f"w{i}"])
            client.receive(1)
        times = []
        for i in range(rounds):
            started = time.perf_counter()
            client.send([f"r{i}"])
            assert client.receive(1) == [f"r{i}"]
            times.append(time.perf_counter() - started)
        texts = [json.dumps({"n": i, "pad": "x" * 100}) for i in range(burst)]
        started = time.perf_counter()
        if isinstance(client, WebSocket):
            client.send(texts)
            got = client.receive(burst)
        else:
            got = []
            for start in range(0, burst, BATCH):  # one POST in flight, the stream read meanwhile
                client.send(texts[start : start + BATCH])
                got += client.receive(len(texts[start : start + BATCH]))
        elapsed = time.perf_counter() - started
        assert got == texts, "lost, doubled or reordered"
        return {"p50": percentile(times, 50), "p99": percentile(times, 99), "rate": burst / elapsed}
    finally:
        client.close()


def run(rounds: int, burst: int) -> list[str]:
    port = free_port()
    server = ChildProcess(
        [
            sys.executable,
            "-m",
            "interface_server",
            "tests.interface_server.inmemory_echo:channel_layer",
            "-p",
            str(port),
        ],
        label="interface-server",
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        server.wait_for("Listening on", 15)
        results = {kind.name: measure(kind, port, rounds, burst) for kind in (WebSocket, SSE, Poll)}
    finally:
        server.stop(timeout=10)
        server.close()
    base = results["websocket"]
    rows = [["transport", "round trip p50", "p99", "p50 vs WS", "burst frames/s", "vs WS"]]
    for name, r in results.items():
        rows.append(
            [
                name,
                f"{r['p50'] * 1e3:.2f} ms",
                f"{r['p99'] * 1e3:.2f} ms",
                f"{r['p50'] / base['p50']:.1f}x",
                f"{r['rate']:,.0f}",
                f"{r['rate'] / base['rate']:.2f}x",
            ]
        )
    return columns(rows)


def main() -> None:
    parser = benchmark_parser(__doc__, "a few rounds, to check that it runs")
    parser.add_argument("--rounds", type=int, default=500, help="sequential round trips per transport (500)")
    parser.add_argument("--burst", type=int, default=2000, help="frames in the burst per transport (2000)")
    args = parser.parse_args()
    rounds, burst = (20, 200) if args.quick else (args.rounds, args.burst)
    print(f"Echo through interface-server on the in-memory layer: {rounds} round trips, a burst of {burst} frames")
    for line in run(rounds, burst):
        print(line)


if __name__ == "__main__":
    main()
