"""The machine's own floors under issue 19's targets: what the kernel alone costs, in one run.

    python3 benchmarks/floors_bench.py [--quick] [--sockets N]

No Redis, no Twisted, no project code: plain sockets, to tell what any
Python server on this machine pays from what ours adds.

1. send(): one 132-byte WebSocket text frame to each of N loopback TCP
   sockets (TCP_NODELAY, non-blocking, as the interface server's), whose
   peers another process drains with epoll, as a load generator does: CPU
   per send() in the sending process. fanout_bench.py and shootout_bench.py
   print the interface server's "CPU per message delivered": the
   difference is Python.
2. A wake-up: two processes ping-pong one byte over a socketpair, so each
   message wakes the other process: one-way p50 and p99 (half the round
   trip). A WebSocket echo through a worker wakes six processes or threads
   in turn (server reactor, sender thread, Redis, worker, Redis, the
   reply reader); an in-process server such as Channels 4 wakes one.
3. The bounds these imply for the targets, printed with the figures.
"""

from __future__ import annotations

import os
import resource
import selectors
import socket
import statistics
import sys
import time

from common import benchmark_parser, percentile

FRAME = b"\x81\x7e\x00\x80" + b"x" * 128
IN_FLIGHT = 4  # the shootout's --concurrent broadcasts
SHOOTOUT_P95 = 0.5


def drain(listener_address: tuple[str, int], count: int, expected: int) -> None:
    """Child: connect `count` sockets, read until `expected` bytes arrived in all, then exit."""
    sel = selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.create_connection(listener_address)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
    got = 0
    while got < expected:
        for key, _ in sel.select(10):
            try:
                got += len(key.fileobj.recv(65536))
            except BlockingIOError:
                pass
    os._exit(0)


def send_cost(sockets: int, rounds: int) -> list[float]:
    """CPU seconds per send() of one frame, one figure per round over all `sockets`."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(sockets)
    address = listener.getsockname()
    pid = os.fork()
    if pid == 0:
        try:
            listener.close()
            drain(address, sockets, sockets * rounds * len(FRAME))
        finally:
            os._exit(1)
    accepted = []
    for _ in range(sockets):
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.setblocking(False)
        accepted.append(conn)
    per_send = []
    for _ in range(rounds):
        start = time.process_time()
        for conn in accepted:
            conn.send(FRAME)
        per_send.append((time.process_time() - start) / sockets)
        time.sleep(0.05)  # the reader catches up: every round starts with empty queues
    os.waitpid(pid, 0)
    for conn in accepted:
        conn.close()
    listener.close()
    return per_send


def wake_latency(messages: int, idle: float = 0.0) -> list[float]:
    """One-way latencies (half a ping-pong round trip) between two processes over a socketpair.

    `idle`: seconds both sleep between round trips, so each wake finds the other process asleep
    (as an echo's processes are between messages) rather than just descheduled.
    """
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            for _ in range(messages):
                theirs.recv(1)
                theirs.send(b"p")
        finally:
            os._exit(0)
    theirs.close()
    out = []
    for _ in range(messages):
        start = time.perf_counter()
        ours.send(b"p")
        ours.recv(1)
        out.append((time.perf_counter() - start) / 2)
        if idle:
            time.sleep(idle)
    os.waitpid(pid, 0)
    ours.close()
    return out


def main() -> int:
    parser = benchmark_parser(__doc__, "300 sockets x 5 rounds, 2,000 ping-pongs")
    parser.add_argument("--sockets", type=int, help="sockets sent to (default 1000; --quick 300)")
    args = parser.parse_args()
    sockets = args.sockets or (300 if args.quick else 1000)
    rounds, pings = (5, 2_000) if args.quick else (20, 20_000)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * sockets + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * sockets + 64), hard))
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}"
    )
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} before the run")

    sends = send_cost(sockets, rounds)
    send_us = statistics.median(sends) * 1e6
    print(f"\n1. send() of a {len(FRAME)}-byte frame to each of {sockets:,} loopback sockets, {rounds} rounds")
    print(f"   CPU per send(): median {send_us:.1f} us (min {min(sends) * 1e6:.1f}, max {max(sends) * 1e6:.1f})")

    print("\n2. a wake-up: ping-pongs between two processes over a socketpair")
    hot = wake_latency(pings)
    print(
        f"   back to back ({pings:,}): one way p50 {percentile(hot, 50) * 1e6:.1f} us, "
        f"p99 {percentile(hot, 99) * 1e6:.1f} us"
    )
    cold = wake_latency(pings // 10, idle=0.001)
    wake_p50 = percentile(cold, 50) * 1e6
    print(
        f"   1 ms apart, as an echo's ({pings // 10:,}): one way p50 {wake_p50:.1f} us, "
        f"p99 {percentile(cold, 99) * 1e6:.1f} us"
    )

    print("\n3. what these imply")
    print(f"   a broadcast to 1,000 sockets from one process: at least {send_us * 1000 / 1e3:.1f} ms of send() alone")
    bound = SHOOTOUT_P95 / (IN_FLIGHT * send_us * 1e-6)
    print(
        f"   shootout, one server process, {IN_FLIGHT} broadcasts in flight, p95 <= 500 ms: at most "
        f"{bound:,.0f} clients if a delivery cost only its send() and nothing queued behind it"
    )
    print(f"   an echo through a worker, six wake-ups in turn: at least {6 * wake_p50 / 1e3:.3f} ms of wake-ups alone")
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())} after the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
