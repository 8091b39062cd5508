"""Benchmark IPCChannelLayer against RedisChannelLayer and raw posix_ipc, in one run on one machine.

    python benchmarks/ipc_bench.py [--redis-url URL] [--quick] [--echo]

The IPC and Redis part of `layer_bench.py` (same measurements, same code in
layer_kinds.py): send+receive throughput in rounds of 10, cross-process
one-way latency against an echo process, and with `--echo` the WebSocket echo and HTTP req/s
through the test project served on each layer, taking turns; then
the targets of issue 16: IPC throughput at least 2x Redis's, IPC p50 (one way
and WebSocket echo) below Redis's. Every object the run creates is removed.
"""

from __future__ import annotations

import os

import layer_kinds
from common import benchmark_parser
from layer_bench import FULL, QUICK, side_by_side
from layer_kinds import Brokers
from report import print_table, print_verdict

KINDS = ["ipc", "redis"]


def main() -> int:
    parser = benchmark_parser(__doc__, "fewer messages and samples (a smoke run)")
    parser.add_argument("--echo", action="store_true", help="also the WebSocket echo through the whole stack")
    args = parser.parse_args()
    brokers = Brokers(args.redis_url, layer_kinds.default_amqp_url(), f"ipcbench{os.getpid()}")
    layer_kinds.cleanup(KINDS, brokers)
    try:
        rows = side_by_side(KINDS, brokers, QUICK if args.quick else FULL, args.echo)
    finally:
        layer_kinds.cleanup(KINDS, brokers)
    print_table(rows, "baseline")
    print_verdict(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
