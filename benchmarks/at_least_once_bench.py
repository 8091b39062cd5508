"""Benchmark the cost of at-least-once delivery on the Redis layer: the same job stream on a normal
channel and on an at-least-once one, in one run, on one Redis.

    python benchmarks/at_least_once_bench.py [--messages N] [--redis-url URL] [--rounds R]

Each round, for each mode, on a fresh key prefix: send N messages of ~300 bytes one by one, then
take them one by one as a worker does (`receive`), and on the at-least-once channel ack each one
after taking it (`ack`, what runworker does when the consumer returns). Printed: messages per
second for the send phase and for the take(+ack) phase, the best of R rounds, and the ratio
at-least-once / normal. No consumer work is done: this is the layer's overhead alone, the most
pessimistic view (a real job that renders a thumbnail for 100 ms hides it entirely).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from channels_core.layers import RedisChannelLayer  # noqa: E402


def one_round(url: str, messages: int, reliable: bool) -> tuple[float, float]:
    prefix = f"bench-alo-{uuid.uuid4().hex[:8]}:"
    setting = {"jobs": {"redeliver_after": 60}} if reliable else None
    layer = RedisChannelLayer(hosts=[url], prefix=prefix, capacity=messages + 10, at_least_once=setting)
    body = {"job": 0, "image": "uploads/" + "x" * 200 + ".jpg", "sizes": [64, 128, 256]}
    try:
        started = time.perf_counter()
        for i in range(messages):
            body["job"] = i
            layer.send("jobs", body)
        sending = time.perf_counter() - started
        started = time.perf_counter()
        taken = 0
        while taken < messages:
            channel, message = layer.receive(["jobs"])
            if channel is None:
                raise RuntimeError(f"only {taken} of {messages} messages came back")
            if reliable:
                layer.ack("jobs", message["__delivery__"]["id"])
            taken += 1
        taking = time.perf_counter() - started
        return messages / sending, messages / taking
    finally:
        layer.flush()
        layer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    best = {}
    for _ in range(args.rounds):
        for reliable in (False, True):  # interleaved: both modes see the same noise
            send, take = one_round(args.redis_url, args.messages, reliable)
            old = best.get(reliable, (0.0, 0.0))
            best[reliable] = (max(old[0], send), max(old[1], take))
    print(
        f"at-least-once overhead, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.messages} messages, "
        f"best of {args.rounds} rounds, one client, noisy 2-core VM"
    )
    print(f"{'':24}{'send/s':>10}{'take/s':>14}")
    print(f"{'normal channel':24}{best[False][0]:>10,.0f}{best[False][1]:>14,.0f}   (receive)")
    print(f"{'at-least-once channel':24}{best[True][0]:>10,.0f}{best[True][1]:>14,.0f}   (receive + ack)")
    print(f"{'ratio':24}{best[True][0] / best[False][0]:>10.2f}{best[True][1] / best[False][1]:>14.2f}")


if __name__ == "__main__":
    main()
