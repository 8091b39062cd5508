"""Benchmark RedisChannelLayer against raw redis-py doing the minimum, on the same server.

    python benchmarks/layer_bench.py [--redis-url URL] [--quick]

Measures, in one run, each figure for our layer and for the cheapest raw
redis-py equivalent, then prints their ratio (ours / raw) and the target:

1. send throughput: sequential `layer.send` vs `RPUSH`, 100-byte messages;
2. receive throughput: `layer.receive` (block=True and block=False) vs `RPOP`;
3. batches: `send_many` / `receive_batch` of 1000 vs pipelined `RPUSH` / `LPOP key count`;
4. cross-process one-way latency (ping-pong round trip / 2): layer send +
   blocking receive vs `LPUSH` + `BLPOP`, against an echo process;
5. a group send to 1,000 members over 10 process channels, checking that every
   member got it, against the median time of one `layer.send`.

Every key lives under a prefix unique to the run, deleted at start and end.
Exits 0 unless something crashes; a missed target is marked MISSED.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from common import benchmark_parser, millis, percentile
from report import Row, Target, mark, print_table, print_verdict

from channels_core.layers.redis import RedisChannelLayer

TP_CHANNEL = "bench.tp"
BATCH_CHANNEL = "bench.batch"
SINGLE_CHANNEL = "bench.single"
PING, PONG = "bench.ping", "bench.pong"
GROUP = "benchgroup"
GROUP_PREFIXES, GROUP_LOCALS = 10, 100
MESSAGE_SIZE = 100
BATCH_SIZE = 1000
BLOCK_TIMEOUT = 5  # seconds, like the layer's default blocking_timeout
LATENCY_WARMUP = 20
LATENCY_SPACING = 0.001  # seconds between ping-pongs, so the echo side is parked in its blocking read
CHUNKS = 10  # turns ours and raw take in a throughput comparison
SINGLES_PER_ROUND = 10  # single sends (and PINGs) timed beside each group send
ECHO_MAX_IDLE = 12  # empty blocking reads before an orphaned echo process gives up


@dataclass(frozen=True)
class Sizes:
    messages: int
    batches: int
    latency_samples: int
    group_rounds: int


FULL = Sizes(messages=20_000, batches=20, latency_samples=1000, group_rounds=50)
QUICK = Sizes(messages=2_000, batches=2, latency_samples=100, group_rounds=5)


@dataclass
class Context:
    url: str
    prefix: str
    sizes: Sizes
    layer: RedisChannelLayer
    client: redis.Redis
    message: dict
    value: bytes

    def raw_key(self, name: str) -> str:
        return raw_prefix(self.prefix) + name


# -- setup -----------------------------------------------------------------------


def raw_prefix(prefix: str) -> str:
    return prefix + "raw:"


def make_layer(url: str, prefix: str) -> RedisChannelLayer:
    return RedisChannelLayer(hosts=[url], prefix=prefix, channel_capacity={"bench.*": 10**6})


def sized_message(layer: RedisChannelLayer, size: int) -> dict:
    """A {"text": "x..."} message whose serialized payload is `size` bytes (or just under)."""
    for length in range(size, 0, -1):
        message = {"text": "x" * length}
        if len(layer.serializer.dumps(message)) <= size:
            return message
    raise ValueError(f"no message serializes to {size} bytes")


def cleanup(ctx: Context) -> None:
    ctx.layer.flush()
    keys = list(ctx.client.scan_iter(match=raw_prefix(ctx.prefix) + "*", count=1000))
    if keys:
        ctx.client.unlink(*keys)


# -- timing helpers -----------------------------------------------------------------


@dataclass
class Timing:
    seconds: float
    results: list[Any]

    def rate(self, per_call: int = 1) -> float:
        """Messages per second, for calls that each handle `per_call` messages."""
        return len(self.results) * per_call / self.seconds


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds taken by `fn()`, its result)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def interleaved(ops: dict[str, Callable[[], Any]], calls: int, chunks: int = CHUNKS) -> dict[str, Timing]:
    """Call each op `calls` times, taking turns chunk by chunk.

    Taking turns puts ours and raw under the same conditions: on a small VM
    the round trip to Redis swings between fast and slow spells (where the
    scheduler puts the two processes), which would otherwise favour whichever
    side happened to run during a fast one.
    """
    timings = {label: Timing(0.0, []) for label in ops}
    base, extra = divmod(calls, chunks)
    for chunk in range(chunks):
        size = base + (chunk < extra)
        for label, op in ops.items():
            seconds, results = timed(functools.partial(repeat, op, size))
            timings[label].seconds += seconds
            timings[label].results += results
    return timings


def repeat(op: Callable[[], Any], count: int) -> list[Any]:
    return [op() for _ in range(count)]


def drain(pop: Callable[[], list | None]) -> list:
    """Call a batch pop until it comes back empty: everything it returned."""
    items: list = []
    while batch := pop():
        items += batch
    return items


def check_count(label: str, got: int, wanted: int) -> None:
    if got != wanted:
        print(f"  WARNING: {label} got {got} of {wanted} messages")


# -- reporting -------------------------------------------------------------------------


def compare(measure: str, ours: float, raw: float, fmt: Callable[[float], str], target: Target | None) -> Row:
    ratio = ours / raw
    row = Row(measure, fmt(ours), fmt(raw), f"{ratio:.2f}", str(target or "-"), target.met(ratio) if target else None)
    print(f"  {measure}: ours {row.ours}, raw {row.baseline}, ratio {row.ratio}{mark(row)}", flush=True)
    return row


def per_second(value: float) -> str:
    return f"{value:,.0f} msg/s"


def micros(value: float) -> str:
    return f"{value * 1e6:,.0f} us"


# -- 1 and 2: sequential send and receive ---------------------------------------------------


def bench_sequential(ctx: Context) -> list[Row]:
    print("Sequential send / receive", flush=True)
    n, layer, client, key = ctx.sizes.messages, ctx.layer, ctx.client, ctx.raw_key("tp")
    sends = interleaved(
        {"send": lambda: layer.send(TP_CHANNEL, ctx.message), "RPUSH": lambda: client.rpush(key, ctx.value)}, n
    )
    # A second helping for our block=False receives, sent untimed.
    for start in range(0, n, BATCH_SIZE):
        layer.send_many(TP_CHANNEL, [ctx.message] * min(BATCH_SIZE, n - start))
    receives = interleaved(
        {
            "receive block=True": lambda: layer.receive([TP_CHANNEL], block=True)[1],
            "receive block=False": lambda: layer.receive([TP_CHANNEL], block=False)[1],
            "RPOP": lambda: client.rpop(key),
        },
        n,
    )
    for label, timing in receives.items():
        check_count(label, sum(m is not None for m in timing.results), n)
    floor = Target(0.8, at_least=True)
    raw_pop = receives["RPOP"].rate()
    return [
        compare("send (vs RPUSH)", sends["send"].rate(), sends["RPUSH"].rate(), per_second, floor),
        compare("receive block=True (vs RPOP)", receives["receive block=True"].rate(), raw_pop, per_second, floor),
        compare("receive block=False (vs RPOP)", receives["receive block=False"].rate(), raw_pop, per_second, floor),
    ]


# -- 3: batches --------------------------------------------------------------------------------


def bench_batches(ctx: Context) -> list[Row]:
    print(f"Batches of {BATCH_SIZE}", flush=True)
    batches, layer, client, key = ctx.sizes.batches, ctx.layer, ctx.client, ctx.raw_key("batch")
    messages = [ctx.message] * BATCH_SIZE

    def pipelined_rpush() -> None:
        pipe = client.pipeline(transaction=False)
        for _ in range(BATCH_SIZE):
            pipe.rpush(key, ctx.value)
        pipe.execute()

    sends = interleaved(
        {"send_many": lambda: layer.send_many(BATCH_CHANNEL, messages), "pipelined RPUSH": pipelined_rpush},
        batches,
        chunks=batches,
    )
    pops = interleaved(
        {
            "receive_batch": lambda: layer.receive_batch([BATCH_CHANNEL], BATCH_SIZE),
            "LPOP count": lambda: client.lpop(key, BATCH_SIZE),
        },
        batches,
        chunks=batches,
    )
    for label, timing in pops.items():
        check_count(label, sum(len(batch or ()) for batch in timing.results), batches * BATCH_SIZE)
    ours_send, ours_pop = sends["send_many"].rate(BATCH_SIZE), pops["receive_batch"].rate(BATCH_SIZE)
    raw_push = sends["pipelined RPUSH"].rate(BATCH_SIZE)
    floor = Target(0.3, at_least=True)
    return [
        compare("send_many (vs pipelined RPUSH)", ours_send, raw_push, per_second, floor),
        compare("receive_batch (vs pipelined RPUSH)", ours_pop, raw_push, per_second, floor),
        compare("receive_batch (vs LPOP key count)", ours_pop, pops["LPOP count"].rate(BATCH_SIZE), per_second, None),
    ]


# -- 4: cross-process latency --------------------------------------------------------------------


class LayerTransport:
    """Ping-pong over our layer: a message dict carrying a sequence number."""

    def __init__(self, url: str, prefix: str) -> None:
        self.layer = make_layer(url, prefix)

    def send(self, channel: str, seq: int) -> None:
        self.layer.send(channel, {"seq": seq})

    def recv(self, channel: str) -> int | None:
        _, message = self.layer.receive([channel], block=True)
        return None if message is None else message["seq"]

    def close(self) -> None:
        self.layer.close()


class RawTransport:
    """Ping-pong over raw redis-py: LPUSH the sequence number, BLPOP it."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.prefix = raw_prefix(prefix)

    def send(self, channel: str, seq: int) -> None:
        self.client.lpush(self.prefix + channel, seq)

    def recv(self, channel: str) -> int | None:
        got = self.client.blpop([self.prefix + channel], timeout=BLOCK_TIMEOUT)
        return None if got is None else int(got[1])

    def close(self) -> None:
        self.client.close()


TRANSPORTS = {"ours": LayerTransport, "raw": RawTransport}


def echo(kind: str, url: str, prefix: str) -> None:
    """The echo process: send every ping back as a pong until a negative one (or long silence)."""
    transport = TRANSPORTS[kind](url, prefix)
    idle = 0
    try:
        while idle < ECHO_MAX_IDLE:
            seq = transport.recv(PING)
            if seq is None:
                idle += 1
                continue
            if seq < 0:
                break
            idle = 0
            transport.send(PONG, seq)
    finally:
        transport.close()


def round_trip(transport: LayerTransport | RawTransport, seq: int) -> float:
    start = time.perf_counter()
    transport.send(PING, seq)
    got = transport.recv(PONG)
    took = time.perf_counter() - start
    if got != seq:
        raise RuntimeError(f"ping {seq} came back as {got!r}")
    return took


def wait_for_echo(transport: LayerTransport | RawTransport) -> None:
    """The first ping waits in the queue until the echo process has started."""
    transport.send(PING, 0)
    for _ in range(ECHO_MAX_IDLE):
        got = transport.recv(PONG)
        if got == 0:
            return
    raise RuntimeError("the echo process never answered")


@contextlib.contextmanager
def echo_partner(kind: str, ctx: Context) -> Iterator[LayerTransport | RawTransport]:
    """A transport of `kind` whose pings an echo process (spawned here) answers, warmed up."""
    process = multiprocessing.get_context("spawn").Process(target=echo, args=(kind, ctx.url, ctx.prefix), daemon=True)
    process.start()
    transport = TRANSPORTS[kind](ctx.url, ctx.prefix)
    try:
        wait_for_echo(transport)
        for seq in range(1, LATENCY_WARMUP + 1):
            round_trip(transport, seq)
        yield transport
    finally:
        transport.send(PING, -1)
        transport.close()
        process.join(10)
        if process.is_alive():
            process.terminate()


def bench_latency(ctx: Context) -> list[Row]:
    """Ping-pongs with an echo process, ours and raw taking turns; one-way = round trip / 2."""
    print(f"Cross-process one-way latency (ping-pong / 2, {ctx.sizes.latency_samples} samples)", flush=True)
    samples: dict[str, list[float]] = {kind: [] for kind in TRANSPORTS}
    with contextlib.ExitStack() as stack:
        partners = {kind: stack.enter_context(echo_partner(kind, ctx)) for kind in TRANSPORTS}
        for seq in range(LATENCY_WARMUP + 1, LATENCY_WARMUP + 1 + ctx.sizes.latency_samples):
            for kind, transport in partners.items():
                time.sleep(LATENCY_SPACING)
                samples[kind].append(round_trip(transport, seq) / 2)
    ours, raw = samples["ours"], samples["raw"]
    return [
        compare("latency p50 (vs LPUSH+BLPOP)", percentile(ours, 50), percentile(raw, 50), micros, Target(1.5, False)),
        compare("latency p99 (vs LPUSH+BLPOP)", percentile(ours, 99), percentile(raw, 99), micros, None),
    ]


# -- 5: group send ----------------------------------------------------------------------------------


def bench_group(ctx: Context) -> list[Row]:
    members = {f"benchgrp{i}!{j}" for i in range(GROUP_PREFIXES) for j in range(GROUP_LOCALS)}
    prefixes = [f"benchgrp{i}!" for i in range(GROUP_PREFIXES)]
    print(f"Group send to {len(members)} members over {len(prefixes)} process channels", flush=True)
    layer = ctx.layer
    for member in sorted(members):
        layer.group_add(GROUP, member)

    def members_reached() -> int:
        """Drain every process channel (one message per member reached); -1 on a duplicate."""
        channels = [c for p in prefixes for c, _ in drain(functools.partial(layer.receive_batch, [p], BATCH_SIZE))]
        return len(members & set(channels)) if len(channels) == len(set(channels)) else -1

    singles, pings, groups, reached = [], [], [], []
    for _ in range(ctx.sizes.group_rounds):
        for _ in range(SINGLES_PER_ROUND):
            singles.append(timed(lambda: layer.send(SINGLE_CHANNEL, ctx.message))[0])
            pings.append(timed(ctx.client.ping)[0])
        groups.append(timed(lambda: layer.send_group(GROUP, ctx.message))[0])
        reached.append(members_reached())
    worst = min(reached)
    single = compare(
        "1 layer.send (vs PING), median", statistics.median(singles), statistics.median(pings), millis, None
    )
    cost = compare(
        f"group send of {len(members)} (vs 1 layer.send)",
        statistics.median(groups),
        statistics.median(singles),
        millis,
        Target(5, at_least=False),
    )
    delivery = Row(
        "group members reached, worst round",
        f"{worst}/{len(members)}" if worst >= 0 else "duplicates",
        "-",
        "-",
        f"{len(members)}/{len(members)}",
        worst == len(members),
    )
    print(f"  group send of {len(members)} = {float(cost.ratio):.1f} single sends")
    print(f"  members reached in the worst of {len(reached)} rounds: {delivery.ours}{mark(delivery)}")
    return [single, cost, delivery]


# -- main -------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = benchmark_parser(__doc__, "a 10x smaller run")
    return parser.parse_args()


def warm_up(ctx: Context) -> None:
    """Load the Lua scripts, measure the clock offset and open connections before timing anything."""
    ctx.layer.send(TP_CHANNEL, ctx.message)
    ctx.layer.receive([TP_CHANNEL], block=True)
    ctx.layer.send_many(TP_CHANNEL, [ctx.message])
    ctx.layer.receive_batch([TP_CHANNEL], 10)
    ctx.client.ping()


def main() -> int:
    args = parse_args()
    prefix = f"bench{os.getpid()}:"
    layer = make_layer(args.redis_url, prefix)
    client = redis.Redis.from_url(args.redis_url)
    message = sized_message(layer, MESSAGE_SIZE)
    ctx = Context(args.redis_url, prefix, QUICK if args.quick else FULL, layer, client, message, b"x" * MESSAGE_SIZE)
    print(
        f"Redis {client.info('server')['redis_version']} at {args.redis_url}, key prefix {prefix!r}, "
        f"{'quick' if args.quick else 'full'} run, {len(layer.serializer.dumps(message))}-byte messages\n",
        flush=True,
    )
    cleanup(ctx)
    try:
        warm_up(ctx)
        rows = bench_sequential(ctx) + bench_batches(ctx) + bench_latency(ctx) + bench_group(ctx)
    finally:
        cleanup(ctx)
        layer.close()
        client.close()
    print_table(rows, "raw floor")
    print_verdict(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
