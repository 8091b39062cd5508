"""Echo latency next to a flood of slow consumers, through real processes (the test and the benchmark).

`flood_and_measure` opens `flood_sockets` WebSocket connections on a slow
path, each sending `frames_each` frames asking for a `seconds`-long consumer,
then measures echo round trips on /fault/echo/ from one more connection while
the flood is being worked through.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from tests.interface_server.ws_support import ws_connect


@dataclass
class Latency:
    samples: list[float]
    first_slow_reply: float | None  # seconds after the flood until the first slow consumer answered

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]

    def __str__(self) -> str:
        first = "none" if self.first_slow_reply is None else f"{self.first_slow_reply:.1f}s"
        return (
            f"echo p50 {self.p50 * 1000:.1f} ms, p99 {self.p99 * 1000:.1f} ms, max {max(self.samples) * 1000:.1f} ms "
            f"over {len(self.samples)} round trips; first slow reply after {first}"
        )


def flood_and_measure(
    ws_url: str,
    slow_path: str,
    flood_sockets: int = 4,
    frames_each: int = 3,
    seconds: float = 5.0,
    echoes: int = 60,
    echo_timeout: float = 60.0,
) -> Latency:
    flood = [ws_connect(ws_url + slow_path) for _ in range(flood_sockets)]
    try:
        with ws_connect(ws_url + "/fault/echo/") as ws:
            ws.send("warm-up")
            assert ws.recv(timeout=echo_timeout) == "warm-up"
            started = time.monotonic()
            for sock in flood:
                for _ in range(frames_each):
                    sock.send(f"{seconds:g}")
            time.sleep(0.2)  # the flood is queued before the first echo
            samples = []
            for i in range(echoes):
                sent = time.monotonic()
                ws.send(f"echo-{i}")
                assert ws.recv(timeout=echo_timeout) == f"echo-{i}"
                samples.append(time.monotonic() - sent)
                time.sleep(0.05)
        first = None
        try:
            reply = flood[0].recv(timeout=seconds + 10)
            assert reply == f"slow:{seconds:g}", reply
            first = time.monotonic() - started
        except TimeoutError:
            pass
        return Latency(samples, first)
    finally:
        for sock in flood:
            sock.close()
