"""The whole stack on Redis Sentinel: the master is SIGKILLed while WebSocket clients echo.

interface-server and runworker both get `redis+sentinel://...` as their
only Redis setting; neither is restarted. We measure, per socket, the time
from the SIGKILL to its first echo and count frames whose echo never came
(the server holds a frame while Redis is unreachable, up to `--send-timeout`;
what the dying master held may be lost). Figures are printed.
"""

from __future__ import annotations

import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.interface_server.ws_support import ws_connect
from tests.support.redis_sentinel import SentinelSetup

from .harness import Stack

pytestmark = pytest.mark.slow

SOCKETS = 4
RECOVERY_BOUND = 15.0  # generous, for a busy CI machine; the figures are printed
LOST_BOUND = 2 * SOCKETS  # each socket has one frame in flight at a time


class EchoSocket(threading.Thread):
    """Sends numbered frames one at a time and waits for each echo (up to 1 s, then the next)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.ws = ws_connect(url)
        self.stop = threading.Event()
        self.sent = 0
        self.echoed: set[int] = set()
        self.ok_times: list[float] = []
        self.closed: ConnectionClosed | None = None

    def run(self) -> None:
        n = 0
        try:
            while not self.stop.is_set():
                self.ws.send(str(n))
                self.sent += 1
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline:
                    try:
                        got = int(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
                    except TimeoutError:
                        break
                    self.echoed.add(got)
                    if got == n:
                        self.ok_times.append(time.monotonic())
                        break
                n += 1
        except ConnectionClosed as exc:
            self.closed = exc

    def first_ok_after(self, t: float) -> float | None:
        later = [x for x in self.ok_times if x > t]
        return later[0] - t if later else None

    def longest_gap(self) -> float:
        """The longest time between two echoes: how long this socket went without service."""
        times = self.ok_times
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


def test_server_and_worker_follow_a_sigkilled_master(key_prefix, tmp_path):
    with SentinelSetup() as setup:
        stack = Stack(setup.url(), key_prefix, tmp_path)
        sockets: list[EchoSocket] = []
        try:
            stack.start_server()
            stack.start_worker()
            sockets = [EchoSocket(stack.ws_url + "/ws/echo/") for _ in range(SOCKETS)]
            for s in sockets:
                s.start()
            time.sleep(1.5)
            assert all(s.ok_times for s in sockets), "no echo before the failover"
            killed = setup.master_server()
            killed_at = time.monotonic()
            killed.kill()
            deadline = killed_at + 30
            # Echoes already in flight can come back just after the SIGKILL: recovery counts only
            # echoes after the sentinels have named the new master.
            while time.monotonic() < deadline and setup.current_master_port() == killed.port:
                time.sleep(0.05)
            promoted_at = time.monotonic()
            while time.monotonic() < deadline and not all(s.first_ok_after(promoted_at) for s in sockets):
                time.sleep(0.05)
            time.sleep(1.5)  # traffic on the new master, and late echoes
            for s in sockets:
                s.stop.set()
            for s in sockets:
                s.join(5)
            after_promotion = [s.first_ok_after(promoted_at) for s in sockets]
            recoveries = [None if r is None else r + promoted_at - killed_at for r in after_promotion]
            gaps = [s.longest_gap() for s in sockets]
            lost = sum(s.sent - len(s.echoed) for s in sockets)
            sent = sum(s.sent for s in sockets)
            shown = ", ".join("none" if r is None else f"{r:.2f}s" for r in recoveries)
            print(
                f"\nSentinel, whole stack ({SOCKETS} WebSockets, interface-server + runworker): "
                f"SIGKILL of the master -> new master named after {promoted_at - killed_at:.2f}s, "
                f"first echo on it per socket {shown}, longest gap between echoes "
                f"{', '.join(f'{g:.2f}s' for g in gaps)}; "
                f"{lost} of {sent} frames without an echo; sockets closed: {sum(s.closed is not None for s in sockets)}"
            )
            assert setup.current_master_port() != killed.port
            assert all(s.closed is None for s in sockets), stack.server.output()[-4000:]
            assert all(r is not None and r < RECOVERY_BOUND for r in recoveries), recoveries
            assert max(gaps) < RECOVERY_BOUND, gaps
            assert lost <= LOST_BOUND
            assert stack.server.process.poll() is None and stack.workers[0].poll() is None
        finally:
            for s in sockets:
                s.stop.set()
                try:
                    s.ws.close()
                except Exception:
                    pass
            stack.stop()
