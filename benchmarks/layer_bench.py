"""Benchmark the channel layers side by side, each against its broker's raw floor, in one run.

    python benchmarks/layer_bench.py [--layers redis,ipc,rabbitmq,inmemory] [--quick] [--echo]
        [--redis-url URL] [--amqp-url URL] [--no-detail]

1. Side by side, every layer chosen (default: all four) and the raw floor of
   each broker, measured in the same run and taking turns chunk by chunk so
   load on the machine hits all alike (see layer_kinds.py for the transports):
   - send+receive throughput: `send` then blocking `receive` of ~100-byte
     messages in rounds of 10 (a POSIX message queue holds 10 by default);
     raw floors: redis-py RPUSH + BLPOP, posix_ipc mq_send + mq_receive,
     pika basic_publish + a consumer with auto_ack (and, for RabbitMQ, raw pika
     with the layer's guarantees as well: confirmed publishes, acks confirmed
     before use; see layer_kinds.RawPikaSame for why both);
   - cross-process send->receive latency (ping-pong round trip / 2) against
     an echo process parked in its blocking receive, p50 and p99, against the
     same raw pairs (the in-memory layer is one process's: throughput only);
   - with `--echo`: the test project served on each shared layer (an
     interface-server and 2 runworkers --prefetch 4, as e2e_bench.py): the
     WebSocket echo round trip, 1 client, sequential 100-byte messages, the
     stacks taking turns message by message; then HTTP GET / req/s with
     `wrk -t2 -c50` (when wrk is installed), two runs per stack in turns;
   then the ratios (layer / its raw floor; IPC and RabbitMQ / Redis) and the
   targets of issue 16.
2. Redis detail (when Redis is chosen, unless `--no-detail`): `send` vs
   RPUSH, `receive` vs RPOP, batches of 1000 vs pipelined RPUSH / LPOP count,
   and a group send to 1,000 members over 10 process channels, checking that
   every member got it, against the median time of one `layer.send`.

Everything lives under a prefix unique to the run, removed at start and end
(Redis keys, RabbitMQ queues, /dev/shm files and POSIX message queues).
Exits 0 unless something crashes; a missed target is marked MISSED.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import layer_kinds
import redis
from common import benchmark_parser, columns, millis, percentile
from layer_kinds import KINDS, RAW, SHARED, Brokers
from report import Row, Target, mark, print_table, print_verdict

from channels_core.layers.redis import RedisChannelLayer

TP_CHANNEL = "bench.tp"
BATCH_CHANNEL = "bench.batch"
SINGLE_CHANNEL = "bench.single"
GROUP = "benchgroup"
GROUP_PREFIXES, GROUP_LOCALS = 10, 100
MESSAGE_SIZE = 100
BATCH_SIZE = 1000
CHUNKS = 10  # turns ours and raw take in a throughput comparison
SINGLES_PER_ROUND = 10  # single sends (and PINGs) timed beside each group send


@dataclass(frozen=True)
class Sizes:
    messages: int
    batches: int
    latency_samples: int
    group_rounds: int
    echo_samples: int
    http_seconds: int


FULL = Sizes(messages=20_000, batches=20, latency_samples=1000, group_rounds=50, echo_samples=1000, http_seconds=5)
QUICK = Sizes(messages=2_000, batches=2, latency_samples=100, group_rounds=5, echo_samples=200, http_seconds=2)


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
    print(f"  {measure}: {row.ours} vs {row.baseline}, ratio {row.ratio}{mark(row)}", flush=True)
    return row


def per_second(value: float) -> str:
    return f"{value:,.0f} msg/s"


def micros(value: float) -> str:
    return f"{value * 1e6:,.0f} us"


# -- Redis detail 1: sequential send and receive ---------------------------------------------------


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


# -- Redis detail 2: batches --------------------------------------------------------------------------------


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


# -- Redis detail 3: group send ----------------------------------------------------------------------------------


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


# -- 1: the layers side by side ------------------------------------------------------------------------


def micros_or_dash(samples: list[float] | None, pct: int) -> str:
    return "-" if not samples else micros(percentile(samples, pct))


def side_by_side(kinds: list[str], brokers: Brokers, sizes: Sizes, echo: bool) -> list[Row]:
    """Throughput and latency of every layer in `kinds` and of its broker's raw floor; the targets' rows."""
    shared = [k for k in kinds if k in SHARED]
    names = kinds + [f"raw-{k}" for k in shared] + (["raw-rabbitmq-same"] if "rabbitmq" in shared else [])
    print(f"Layers side by side: {', '.join(kinds)}; raw floors: {', '.join(RAW[k] for k in shared)}", flush=True)
    rates = layer_kinds.throughput(names, brokers, sizes.messages)
    print(f"  throughput: {', '.join(f'{n} {per_second(r)}' for n, r in rates.items())}", flush=True)
    lat = layer_kinds.latency([n for n in names if n != "inmemory"], brokers, sizes.latency_samples)
    stacks = None
    if echo and shared:
        stacks = layer_kinds.through_stacks(shared, brokers, sizes.echo_samples, sizes.http_seconds)
    echoes, http = (stacks.echo, stacks.http) if stacks else ({}, {})
    print_side_by_side(kinds, rates, lat, echoes, http)
    if "raw-rabbitmq-same" in rates:
        same, p50 = rates["raw-rabbitmq-same"], percentile(lat["raw-rabbitmq-same"], 50)
        print(
            f"(raw pika with the layer's guarantees: {same:,.0f}/s, p50 {micros(p50)}; the layer's ratios to it: "
            f"{rates['rabbitmq'] / same:.2f}, {percentile(lat['rabbitmq'], 50) / p50:.2f})"
        )
    return targets(kinds, rates, lat, echoes)


def print_side_by_side(kinds: list[str], rates: dict, lat: dict, echoes: dict, http: dict) -> None:
    p50 = {name: percentile(samples, 50) for name, samples in lat.items()}
    header = ["layer", "send+receive/s", "raw floor/s", "ratio", "one-way p50", "p99", "raw p50", "raw p99", "ratio"]
    if echoes:
        header += ["WS echo p50", "p99"]
    if http:
        header += ["HTTP req/s"]
    rows = [header]
    for kind in kinds:
        raw = f"raw-{kind}"
        row = [kind, f"{rates[kind]:,.0f}"]
        row += [f"{rates[raw]:,.0f}", f"{rates[kind] / rates[raw]:.2f}"] if raw in rates else ["-", "-"]
        row += [micros_or_dash(lat.get(kind), 50), micros_or_dash(lat.get(kind), 99)]
        row += [micros_or_dash(lat.get(raw), 50), micros_or_dash(lat.get(raw), 99)]
        row += [f"{p50[kind] / p50[raw]:.2f}"] if raw in p50 and kind in p50 else ["-"]
        if echoes:
            row += [millis(percentile(echoes[kind], q)) if kind in echoes else "-" for q in (50, 99)]
        if http:
            row += [f"{statistics.fmean(http[kind]):,.0f}" if kind in http else "-"]
        rows.append(row)
    lines = columns(rows)
    print(f"\n{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {os.cpu_count()} CPUs")
    print(lines[0])
    print("-" * len(lines[0]))
    print("\n".join(lines[1:]), flush=True)
    if echoes:
        workers = f"{layer_kinds.STACK_WORKERS} runworkers {' '.join(layer_kinds.STACK_WORKER_ARGS)}"
        print(f"(WS echo: round trip through an interface-server and {workers} of the test project)")
    if http:
        print(f"(HTTP: GET / with wrk -t2 -c{layer_kinds.WRK_CONNECTIONS}, mean of 2 runs per layer, taking turns)")


def targets(kinds: list[str], rates: dict, lat: dict, echoes: dict) -> list[Row]:
    """The targets (issue 16 and the Redis layer's own) as rows: figure, baseline, ratio, target."""
    p50 = {name: percentile(samples, 50) for name, samples in lat.items()}
    rows = []

    def ratio(measure: str, ours: float, base: float, fmt: Callable[[float], str], target: Target | None) -> None:
        rows.append(compare(measure, ours, base, fmt, target))

    if "redis" in kinds:
        ratio("redis p50 (vs LPUSH+BLPOP)", p50["redis"], p50["raw-redis"], micros, Target(1.5))
    if "ipc" in kinds:
        ratio("ipc throughput (vs raw posix_ipc)", rates["ipc"], rates["raw-ipc"], per_second, None)
        ratio("ipc p50 (vs raw posix_ipc)", p50["ipc"], p50["raw-ipc"], micros, None)
    if {"ipc", "redis"} <= set(kinds):
        ratio("ipc throughput (vs redis layer)", rates["ipc"], rates["redis"], per_second, Target(2, at_least=True))
        ratio("ipc p50 (vs redis layer)", p50["ipc"], p50["redis"], micros, Target(0.999))
    if "rabbitmq" in kinds:
        floor = Target(0.5, at_least=True)
        ratio("rabbitmq throughput (vs raw pika)", rates["rabbitmq"], rates["raw-rabbitmq"], per_second, floor)
        ratio("rabbitmq p50 (vs raw pika)", p50["rabbitmq"], p50["raw-rabbitmq"], micros, Target(2))
        same = "raw-rabbitmq-same"
        ratio("rabbitmq throughput (vs pika, same guarantees)", rates["rabbitmq"], rates[same], per_second, floor)
        ratio("rabbitmq p50 (vs pika, same guarantees)", p50["rabbitmq"], p50[same], micros, Target(2))
    if "redis" in echoes:
        for kind in echoes:
            if kind != "redis":
                wanted = Target(0.999) if kind == "ipc" else None
                ours, base = percentile(echoes[kind], 50), percentile(echoes["redis"], 50)
                ratio(f"{kind} WS echo p50 (vs redis stack)", ours, base, millis, wanted)
    return rows


# -- main -------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = benchmark_parser(__doc__, "a 10x smaller run")
    parser.add_argument(
        "--layers",
        default=",".join(KINDS),
        help=f"comma-separated layers to measure, of {', '.join(KINDS)} (default: all)",
    )
    parser.add_argument(
        "--amqp-url",
        default=layer_kinds.default_amqp_url(),
        help="RabbitMQ broker (default: $RABBITMQ_URL, $CLOUDAMQP_URL or amqp://guest:guest@127.0.0.1:5672/%%2F)",
    )
    parser.add_argument("--echo", action="store_true", help="also the WebSocket echo through a full stack per layer")
    parser.add_argument("--no-detail", action="store_true", help="skip the Redis detail (part 2)")
    args = parser.parse_args()
    args.layers = [k.strip() for k in args.layers.split(",") if k.strip()]
    unknown = sorted(set(args.layers) - set(KINDS))
    if unknown or not args.layers:
        parser.error(f"--layers: unknown {', '.join(unknown) or 'none given'}; choose from {', '.join(KINDS)}")
    return args


def warm_up(ctx: Context) -> None:
    """Load the Lua scripts, measure the clock offset and open connections before timing anything."""
    ctx.layer.send(TP_CHANNEL, ctx.message)
    ctx.layer.receive([TP_CHANNEL], block=True)
    ctx.layer.send_many(TP_CHANNEL, [ctx.message])
    ctx.layer.receive_batch([TP_CHANNEL], 10)
    ctx.client.ping()


def redis_detail(url: str, prefix: str, sizes: Sizes) -> list[Row]:
    layer = make_layer(url, prefix)
    client = redis.Redis.from_url(url)
    message = sized_message(layer, MESSAGE_SIZE)
    ctx = Context(url, prefix, sizes, layer, client, message, b"x" * MESSAGE_SIZE)
    print(
        f"\nRedis detail: Redis {client.info('server')['redis_version']} at {url}, key prefix {prefix!r},"
        f" {len(layer.serializer.dumps(message))}-byte messages",
        flush=True,
    )
    cleanup(ctx)
    try:
        warm_up(ctx)
        return bench_sequential(ctx) + bench_batches(ctx) + bench_group(ctx)
    finally:
        cleanup(ctx)
        layer.close()
        client.close()


def main() -> int:
    args = parse_args()
    sizes = QUICK if args.quick else FULL
    brokers = Brokers(args.redis_url, args.amqp_url, f"bench{os.getpid()}")
    print(f"{'quick' if args.quick else 'full'} run, prefix {brokers.prefix!r}, Python {sys.version.split()[0]}\n")
    layer_kinds.cleanup(args.layers, brokers)
    try:
        rows = side_by_side(args.layers, brokers, sizes, args.echo)
    finally:
        layer_kinds.cleanup(args.layers, brokers)
    if "redis" in args.layers and not args.no_detail:
        rows += redis_detail(args.redis_url, f"bench{os.getpid()}d:", sizes)
    print_table(rows, "baseline")
    print_verdict(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
