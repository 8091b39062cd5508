"""Benchmark presence: joins, `Group.presence()` on large groups, and the sweep of a dead server's members.

    python benchmarks/presence_bench.py [--redis-url URL] [--quick]

On the in-memory layer, one Redis and two Redis shards (databases 0 and 1 of
the same server), in one run: for groups of 1,000, 5,000 and 20,000
members (the members spread over 10 interface servers' reply prefixes):

- joins per second (`presence_join`, one at a time, events off);
- `presence_members` (what `Group.presence()` calls): median and p99 of 20
  calls, beside `group_channels` on the same group (the names only) as the
  baseline, and the ratio;
- the sweep: one interface server holding 1,000 members (events on) has
  its lease expire; how long the `lease_sweep` call that removes its
  records and memberships and sends the 1,000 leave events takes.

Every key the run creates is under its own prefix and flushed at the end.
Figures are wall-clock on whatever machine runs it; compare the rows of one run.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import benchmark_parser, columns, percentile  # noqa: E402

from channels_core.layers import InMemoryChannelLayer, RedisChannelLayer  # noqa: E402

SERVERS = 10
CALLS = 20
SWEPT = 1000


def _layers(redis_url: str, prefix: str) -> dict:
    base = redis_url.rsplit("/", 1)[0]
    return {
        "in-memory": lambda: InMemoryChannelLayer(),
        "redis": lambda: RedisChannelLayer(hosts=[redis_url], prefix=prefix),
        "redis, 2 shards": lambda: RedisChannelLayer(hosts=[f"{base}/0", f"{base}/1"], prefix=prefix),
    }


def _timed(fn, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def measure(layer, size: int) -> list[str]:
    group = f"bench-{size}"
    started = time.perf_counter()
    for i in range(size):
        layer.presence_join(group, f"bench.srv{i % SERVERS}!c{i}", i, {"name": f"user {i}"})
    joins = size / (time.perf_counter() - started)
    members = _timed(lambda: layer.presence_members(group), CALLS)
    names = _timed(lambda: layer.group_channels(group), CALLS)
    assert len(layer.presence_members(group)) == size
    ratio = statistics.median(members) / statistics.median(names)
    return [
        f"{joins:,.0f}",
        f"{statistics.median(members) * 1000:.1f}",
        f"{percentile(members, 99) * 1000:.1f}",
        f"{statistics.median(names) * 1000:.1f}",
        f"{ratio:.1f}x",
    ]


def sweep(layer) -> float:
    """Seconds of the `lease_sweep` call that removes a dead server's `SWEPT` members and sends their leaves."""
    layer.lease_renew("bench.dead!", 0.2)
    layer.presence_join("bench-sweep", "bench.live!watcher")
    for i in range(SWEPT):
        layer.presence_join("bench-sweep", f"bench.dead!c{i}", i, None, True)
    time.sleep(0.3)
    started = time.perf_counter()
    swept = layer.lease_sweep("bench-sweeper", 5)
    took = time.perf_counter() - started
    assert swept == ["bench.dead!"] and len(layer.presence_members("bench-sweep")) == 1, swept
    return took


def main() -> int:
    parser = benchmark_parser(__doc__, "groups of 1,000 and 5,000 only")
    args = parser.parse_args()
    sizes = [1000, 5000] if args.quick else [1000, 5000, 20000]
    prefix = f"presencebench{os.getpid()}:"
    header = ["layer, members", "joins/s", "presence p50 ms", "p99 ms", "names only p50 ms", "ratio"]
    rows = [header]
    sweeps = []
    for name, make in _layers(args.redis_url, prefix).items():
        layer = make()
        try:
            layer.flush()
            for size in sizes:
                rows.append([f"{name}, {size:,}", *measure(layer, size)])
            sweeps.append([name, f"{sweep(layer) * 1000:.0f}"])
        finally:
            layer.flush()
            layer.close()
    print(f"presence() on groups of {', '.join(f'{s:,}' for s in sizes)} members ({CALLS} calls each)")
    print("\n".join(columns(rows)))
    print(f"\nthe sweep of a dead server's {SWEPT:,} members (records, memberships, {SWEPT:,} leave events)")
    print("\n".join(columns([["layer", "lease_sweep ms"], *sweeps])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
