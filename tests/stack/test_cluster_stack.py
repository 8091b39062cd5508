"""The whole stack on Redis Cluster: a master is SIGKILLed while WebSocket clients echo.

interface-server and runworker both get `redis+cluster://...` (every node of
a 3-master/3-replica cluster) as their only Redis setting, the test project's
spelling of `REDIS_URL`; neither is restarted. We measure, per socket, the
time from the SIGKILL to its first echo after it, count frames whose echo
never came and sockets closed. Each socket's channels live in buckets spread
over the masters, so some depend on the killed one; while Redis marks the
master failed and before its replica takes over, the whole cluster refuses
commands (cluster-require-full-coverage, on by default), so every socket
waits. Figures are printed.
"""

from __future__ import annotations

import time

import pytest

from tests.support.redis_cluster import NODE_TIMEOUT_MS, ClusterSetup

from .harness import Stack
from .test_sentinel_stack import EchoSocket

pytestmark = pytest.mark.slow

SOCKETS = 4
RECOVERY_TARGET = 10.0  # the target for a Cluster master failover
LOST_BOUND = 2 * SOCKETS  # each socket has one frame in flight at a time


def back_after(socket: EchoSocket, killed_at: float) -> float | None:
    """Seconds from the kill to the echo that ended the socket's longest wait after it (None: no echo since).

    Echoes go on for a moment after the kill (buckets on live masters, and the
    cluster marks the master failed only after cluster-node-timeout), so the
    first echo after the kill says nothing; the end of the outage does.
    """
    times = [killed_at] + [t for t in socket.ok_times if t > killed_at]
    if len(times) == 1:
        return None
    _, end = max(zip(times, times[1:], strict=False), key=lambda pair: pair[1] - pair[0])
    return end - killed_at


def test_server_and_worker_follow_a_cluster_failover(key_prefix, tmp_path):
    with ClusterSetup(masters=3, replicas=1) as cluster:
        stack = Stack(cluster.url(), key_prefix, tmp_path)
        sockets: list[EchoSocket] = []
        try:
            stack.start_server()
            stack.start_worker()
            sockets = [EchoSocket(stack.ws_url + "/ws/echo/") for _ in range(SOCKETS)]
            for s in sockets:
                s.start()
            time.sleep(1.5)
            assert all(s.ok_times for s in sockets), "no echo before the failover"
            killed_at = cluster.kill_master(0)
            failed_over = cluster.wait_failover() - killed_at
            deadline = killed_at + 30
            while time.monotonic() < deadline and not all(s.first_ok_after(killed_at + failed_over) for s in sockets):
                time.sleep(0.05)
            time.sleep(1.5)  # traffic after the failover, and late echoes
            for s in sockets:
                s.stop.set()
            for s in sockets:
                s.join(5)
            recoveries = [back_after(s, killed_at) for s in sockets]
            gaps = [s.longest_gap() for s in sockets]
            lost = sum(s.sent - len(s.echoed) for s in sockets)
            sent = sum(s.sent for s in sockets)
            closed = sum(s.closed is not None for s in sockets)
            shown = ", ".join("none" if r is None else f"{r:.2f}s" for r in recoveries)
            gaps_shown = ", ".join(f"{g:.2f}s" for g in gaps)
            print(
                f"\nCluster, whole stack ({SOCKETS} WebSockets, interface-server + runworker, 3 masters + 3 replicas, "
                f"cluster-node-timeout {NODE_TIMEOUT_MS} ms): replica promoted and every node's cluster_state ok "
                f"{failed_over:.2f}s after the SIGKILL; service back per socket (the echo ending its longest wait) "
                f"{shown}; longest gap between echoes {gaps_shown}; "
                f"{lost} of {sent} frames without an echo; sockets closed: {closed}"
            )
            assert closed == 0, stack.server.output()[-4000:]
            assert all(r is not None and r < RECOVERY_TARGET for r in recoveries), recoveries
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
