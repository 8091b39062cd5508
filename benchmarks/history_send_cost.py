"""What group history costs a group send and its fan-out, against the same group without history.

    python benchmarks/history_send_cost.py [--redis-url URL] [--sockets N] [--sends N]

On one Redis, a group of N sockets (default 1,000) of one interface server
(one process queue, as a real server's sockets are), in the same run:

- send: the median time of `send_group` of a 200-byte text message (the
  plain group: GROUP_SEND; the history group: HISTORY_SEND, which also
  appends to the stream);
- fan-out: the time to read the one element back and decode it into N
  messages (`receive_batch`), plain vs wrapped with the position;

and the ratios history / plain. Prints the date: figures are of a noisy
2-core VM, so compare ratios from one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid

from channels_core.layers import RedisChannelLayer


def measure(layer: RedisChannelLayer, sockets: int, sends: int) -> dict[str, list[float]]:
    """Send and fan-out read times of the plain group and the history group, one after the other per send."""
    groups = {"plain": "plain", "history": "hist-1"}
    for group in groups.values():
        for i in range(sockets):
            layer.group_add(group, f"bench!{group}{i}")
    text = json.dumps({"message": "x" * 180})
    times: dict[str, list[float]] = {f"{kind} {what}": [] for kind in groups for what in ("send", "read")}
    for n in range(sends):
        for kind in groups if n % 2 else reversed(groups):  # alternate who goes first
            start = time.perf_counter()
            layer.send_group(groups[kind], {"text": text})
            times[f"{kind} send"].append(time.perf_counter() - start)
            start = time.perf_counter()
            got = layer.receive_batch(["bench!"], sockets)
            times[f"{kind} read"].append(time.perf_counter() - start)
            assert len(got) == sockets, len(got)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--sends", type=int, default=300)
    args = parser.parse_args()
    layer = RedisChannelLayer(
        hosts=[args.redis_url],
        prefix=f"hcost{uuid.uuid4().hex[:8]}:",
        group_history={"hist-*": {"size": 1000, "ttl": 300}},
    )
    try:
        measure(layer, args.sockets, 20)
        times = measure(layer, args.sockets, args.sends)
        median = {key: statistics.median(values) for key, values in times.items()}
    finally:
        layer.flush()
        layer.close()
    print(
        f"group history send cost, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.sockets} sockets, "
        f"{args.sends} sends each, alternating, medians (noisy 2-core VM)"
    )
    for what in ("send", "read"):
        plain, hist = median[f"plain {what}"], median[f"history {what}"]
        label = "send_group" if what == "send" else "fan-out read"
        print(f"  {label:<14} plain {plain * 1e3:7.3f} ms   history {hist * 1e3:7.3f} ms   ratio {hist / plain:.2f}")


if __name__ == "__main__":
    main()
