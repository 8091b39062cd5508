"""Echo latency next to a flood of 5 s consumers: threads alone against the slow-jobs recipe.

    python benchmarks/slow_consumer_bench.py [--redis-url URL] [--seconds 5] [--flood 12]
                                             [--only threads1|threads4|default|recipe]

Each set-up runs the test project (tests/stack/fault_consumers.py routing) behind a real
interface-server with `runworker` processes, queues `--flood` consumers of `--seconds`
each from 4 sockets, then measures 60 echo round trips on /fault/echo/ from one more
socket (tests/stack/slow_consumer.py). Set-ups:

  threads1  one `runworker --threads 1`, the slow work inline in websocket.receive (1.x default)
  threads4  one `runworker --threads 4`, inline
  default   one `runworker` with the default threads (two per CPU, 2 to 8), inline
  recipe    the slow work forwarded to Channel("slow-jobs"): `runworker --exclude-channels slow-jobs`
            plus `runworker --only-channels slow-jobs` (both default threads)

Prints p50/p99/max per set-up. Slow by nature: each inline set-up waits for the flood.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

from tests.stack.harness import Stack  # noqa: E402
from tests.stack.slow_consumer import flood_and_measure  # noqa: E402
from worker.worker import default_threads  # noqa: E402

SETUPS = {
    "threads1": ("/fault/inline/", [["--threads", "1"]]),
    "threads4": ("/fault/inline/", [["--threads", "4"]]),
    "default": ("/fault/inline/", [[]]),
    "recipe": ("/fault/slow/", [["--exclude-channels", "slow-jobs"], ["--only-channels", "slow-jobs"]]),
}


def run(name: str, redis_url: str, seconds: float, flood: int) -> None:
    path, workers = SETUPS[name]
    prefix = f"bench{uuid.uuid4().hex[:8]}:"
    stack = Stack(
        redis_url,
        prefix,
        Path(tempfile.mkdtemp(prefix="slow-bench-")),
        {"TEST_CHANNEL_ROUTING": "tests.stack.fault_consumers.channel_routing"},
    )
    try:
        stack.start_server()
        for args in workers:
            stack.start_worker(*args)
        per_socket = max(1, flood // 4)
        latency = flood_and_measure(
            stack.ws_url, path, flood_sockets=4, frames_each=per_socket, seconds=seconds, echo_timeout=600
        )
        print(f"{name:9s} ({' + '.join(' '.join(a) or 'defaults' for a in workers)}): {latency}", flush=True)
    finally:
        for worker in stack.workers:
            worker.kill()  # the queued slow work is not worth waiting for
        if stack.server is not None:
            stack.server.stop()
        store = redis.Redis.from_url(redis_url)
        keys = list(store.scan_iter(match=prefix + "*", count=1000))
        if keys:
            store.delete(*keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--flood", type=int, default=12)
    parser.add_argument("--only", choices=list(SETUPS), action="append")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs: runworker's default is --threads {default_threads()}")
    print(f"a flood of {args.flood} consumers of {args.seconds:g} s each, then 60 echo round trips:")
    for name in args.only or list(SETUPS):
        run(name, args.redis_url, args.seconds, args.flood)


if __name__ == "__main__":
    main()
