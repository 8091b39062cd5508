"""Scaling over client-side shards: spread, Redis CPU per message and throughput on 1, 2 and 4 Redis processes.

    python benchmarks/scale_bench.py [--quick]

Starts its own redis-servers (private, on free ports, no persistence) and,
for 1, 2 and 4 of them as client-side shards of one `RedisChannelLayer`,
measures in the same run:

1. spread: how many of 10,000 random channel names (plain, `x!y` process and
   `x?y` single-reader, in equal parts) and of the membership entries of
   1,000 groups each shard owns, and how many commands each server ran
   (INFO commandstats) over the two workloads below: worst shard's distance
   from its share (target: 10%);
2. pairs: PAIRS sender processes each `send` to 16 channels, PAIRS receiver
   processes `receive(block=True)` them; messages per second, and CPU per
   message of the clients (their own process time) and of Redis
   (`used_cpu_sys` + `used_cpu_user` from INFO, summed over the servers);
3. broadcast: one process `send_group`s to a group whose members are the
   process channels of RECEIVERS receiver processes (like interface
   servers), each receiver counting its deliveries; deliveries per second and
   Redis CPU per delivered message (target: at 2 and 4 servers within 25% of
   1 server: it should stay flat).

Then fits the cost model (CPU seconds per message of all processes, a +
b * (servers - 1), from the 1- and 2-server runs; the senders' round
trip), predicts the 4-server throughput from it (the lower of cores / CPU
per message, as every process shares this machine's cores, and senders /
round trip) and prints prediction against measurement (target: within 25%). Figures are
ratios against the 1-server run of the same invocation. Loss is counted
(target 0): every message sent must be received.

The machine's other load moves the throughput figures (the load average is
printed); CPU per message moves much less.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import statistics
import string
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import benchmark_parser  # noqa: E402
from report import Row, Target, print_table, print_verdict  # noqa: E402

from channels_core.layers import names  # noqa: E402
from channels_core.layers.redis import RedisChannelLayer  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

SHARD_COUNTS = (1, 2, 4)
PAIRS = 2
CHANNELS_PER_PAIR = 16
RECEIVERS = 4
MEMBERS_PER_RECEIVER = 50
WARM = "scale.warm"
IDLE_GIVE_UP = 10.0  # seconds without a message before a receiver counts the rest as lost
SPREAD_TARGET = 0.10
FLAT_TARGET = Target(1.25)
MODEL_TARGET = 0.25
WORKLOAD_COMMANDS = ("evalsha", "eval", "blpop", "bzpopmin", "lpop", "rpush", "zadd", "del", "unlink")


@dataclass(frozen=True)
class Sizes:
    messages_per_pair: int
    group_sends: int
    spread_channels: int


FULL = Sizes(messages_per_pair=10_000, group_sends=2000, spread_channels=10_000)
QUICK = Sizes(messages_per_pair=1_000, group_sends=200, spread_channels=3_000)


# -- names --------------------------------------------------------------------------


def random_channels(rng: random.Random, count: int) -> list[str]:
    """Plain, process (`x!y`) and single-reader (`x?y`) channel names in equal parts."""

    def word(n: int) -> str:
        return "".join(rng.choices(string.ascii_letters, k=n))

    kinds = [
        lambda: f"websocket.receive.{word(8)}",
        lambda: f"interface.response.{word(8)}!{word(12)}",
        lambda: f"http.response?{word(12)}",
    ]
    return [kinds[i % 3]() for i in range(count)]


def worst_share(counts: list[int]) -> float:
    """The largest distance of a shard's count from its fair share, as a fraction of the share."""
    fair = sum(counts) / len(counts)
    return max(abs(c / fair - 1) for c in counts)


# -- workers (child processes) --------------------------------------------------------


def make_layer(urls: list[str], prefix: str) -> RedisChannelLayer:
    return RedisChannelLayer(hosts=urls, prefix=prefix, expiry=120, capacity=10**6)


def sender(urls, prefix, channels, count, start, results) -> None:
    layer = make_layer(urls, prefix)
    layer.send(WARM, {"n": -1})
    start.wait()
    cpu, wall = time.process_time(), time.monotonic()
    for i in range(count):
        layer.send(channels[i % len(channels)], {"n": i, "text": "x" * 80})
    results.put(("send", count, time.process_time() - cpu, time.monotonic() - wall))
    layer.close()


def receiver(urls, prefix, channels, expected, start, results) -> None:
    layer = make_layer(urls, prefix)
    layer.receive([WARM])  # connections made, scripts loaded
    start.wait()
    cpu = time.process_time()
    got = 0
    idle_since = time.monotonic()
    while got < expected:
        channel, _ = layer.receive(channels, block=True)
        if channel is None:
            if time.monotonic() - idle_since > IDLE_GIVE_UP:
                break
            continue
        got += 1
        idle_since = time.monotonic()
    results.put(("receive", got, time.process_time() - cpu, time.monotonic()))
    layer.close()


def group_sender(urls, prefix, group, count, start, results) -> None:
    layer = make_layer(urls, prefix)
    start.wait()
    cpu, wall = time.process_time(), time.monotonic()
    for i in range(count):
        layer.send_group(group, {"n": i, "text": "x" * 80})
    results.put(("send_group", count, time.process_time() - cpu, time.monotonic() - wall))
    layer.close()


def mixed_workload(layer: RedisChannelLayer, rng: random.Random, channels: int, groups: int) -> None:
    """Send to and receive from `channels` random channels; add 3 members to each of `groups` groups, send, discard."""
    chans = random_channels(rng, channels)
    for ch in chans:
        layer.send(ch, {"text": "x"})
    for ch in chans:
        layer.receive([names.list_name(ch)])
    for i in range(groups):
        members = random_channels(rng, 3)
        for member in members:
            layer.group_add(f"mixed{i}", member)
        layer.send_group(f"mixed{i}", {"text": "y"})
        for member in members:
            layer.receive([names.list_name(member)])
            layer.group_discard(f"mixed{i}", member)


# -- one topology -----------------------------------------------------------------------


@dataclass
class Phase:
    delivered: int
    expected: int
    seconds: float
    client_cpu: float  # seconds, all client processes
    redis_cpu: float  # seconds, all servers
    commands: list[int]  # per server
    send_wall: float  # seconds one sender process took per send (its round trip)


def redis_cpu(servers: list[RedisServer]) -> float:
    total = 0.0
    for server in servers:
        client = server.client()
        info = client.info("cpu")
        client.close()
        total += info["used_cpu_sys"] + info["used_cpu_user"]
    return total


def commands(servers: list[RedisServer]) -> list[int]:
    counts = []
    for server in servers:
        client = server.client()
        stats = client.info("commandstats")
        client.close()
        counts.append(sum(v["calls"] for k, v in stats.items() if k.removeprefix("cmdstat_") in WORKLOAD_COMMANDS))
    return counts


def run_phase(servers: list[RedisServer], targets: list[tuple], expected: int) -> Phase:
    """Start the processes `targets` (function, args), release them together, wait, and account."""
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=fn, args=(*args, start, results), daemon=True) for fn, args in targets]
    for p in procs:
        p.start()
    time.sleep(0.5 + 0.1 * len(procs))  # connections made, scripts loaded
    cmd_before, cpu_before = commands(servers), redis_cpu(servers)
    t0 = time.monotonic()
    start.set()
    reports = []
    while len(reports) < len(procs):
        try:
            reports.append(results.get(timeout=5))
        except queue.Empty:
            # A child that crashed never reports: stop waiting for it instead of hanging.
            if sum(p.exitcode not in (None, 0) for p in procs):
                raise RuntimeError("a benchmark process failed (its traceback is above)") from None
    for p in procs:
        p.join(30)
    receivers = [r for r in reports if r[0] == "receive"]
    seconds = max(r[3] for r in receivers) - t0
    delivered = sum(r[1] for r in receivers)
    cmd_after = commands(servers)
    return Phase(
        delivered,
        expected,
        seconds,
        sum(r[2] for r in reports),
        redis_cpu(servers) - cpu_before,
        [a - b for a, b in zip(cmd_after, cmd_before, strict=True)],
        statistics.mean(r[3] / r[1] for r in reports if r[0] != "receive"),
    )


@dataclass
class Topology:
    shards: int
    queue_spread: float
    member_spread: float
    command_spread: float
    pairs: Phase
    broadcast: Phase


def measure(shards: int, sizes: Sizes, prefix: str) -> Topology:
    servers = [RedisServer() for _ in range(shards)]
    try:
        for server in servers:
            server.start()
        urls = [s.url for s in servers]
        ring = make_layer(urls, prefix).ring  # the layer's own ring, over its own server labels
        rng = random.Random(14)
        queues = [names.list_name(c) for c in random_channels(rng, 10_000)]
        members = [names.list_name(c) for _ in range(1000) for c in random_channels(rng, rng.randint(1, 10))]
        per_queue, per_member = [0] * shards, [0] * shards
        for q in queues:
            per_queue[ring.get(q)] += 1
        for m in members:
            per_member[ring.get(m)] += 1

        before = commands(servers)
        spread_layer = make_layer(urls, prefix)
        mixed_workload(spread_layer, rng, sizes.spread_channels, sizes.spread_channels // 10)
        spread_layer.close()
        mixed_commands = [a - b for a, b in zip(commands(servers), before, strict=True)]

        pair_channels = [
            [f"pair{p}.{c}.{''.join(rng.choices(string.ascii_lowercase, k=6))}" for c in range(CHANNELS_PER_PAIR)]
            for p in range(PAIRS)
        ]
        n = sizes.messages_per_pair
        targets = [(sender, (urls, prefix, chans, n)) for chans in pair_channels]
        targets += [(receiver, (urls, prefix, chans, n)) for chans in pair_channels]
        pairs = run_phase(servers, targets, PAIRS * n)

        layer = make_layer(urls, prefix)
        group = "scale.room"
        prefixes = [f"bc{r}.{''.join(rng.choices(string.ascii_lowercase, k=6))}!" for r in range(RECEIVERS)]
        for pfx in prefixes:
            for i in range(MEMBERS_PER_RECEIVER):
                layer.group_add(group, f"{pfx}m{i}")
        layer.close()
        per_receiver = sizes.group_sends * MEMBERS_PER_RECEIVER
        targets = [(group_sender, (urls, prefix, group, sizes.group_sends))]
        targets += [(receiver, (urls, prefix, [pfx], per_receiver)) for pfx in prefixes]
        broadcast = run_phase(servers, targets, RECEIVERS * per_receiver)

        return Topology(
            shards,
            worst_share(per_queue),
            worst_share(per_member),
            worst_share(mixed_commands) if shards > 1 else 0.0,
            pairs,
            broadcast,
        )
    finally:
        for server in servers:
            server.cleanup()


# -- report ------------------------------------------------------------------------------


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us"


def rate(value: float) -> str:
    return f"{value:,.0f}/s"


def pct(value: float) -> str:
    return f"{value:.1%}"


def report(results: list[Topology]) -> list[Row]:
    rows: list[Row] = []
    base = results[0]
    cores = os.cpu_count() or 1

    # The model, from the 1-server run: CPU seconds per message of the clients and of Redis.
    # Messages/s = the lower of two bounds: the cores over the CPU per message of every process
    # (they all share this machine's cores), and the senders over their round trip per send
    # (each sender waits for each send's reply; a group send delivers `per_send` messages).
    # CPU per message = a + b * (servers - 1), and so is a sender's round trip: a receive that
    # listens on channels spread over several servers, and a group send (one script per server,
    # one after the other), pay per server. a and b come from the 1- and 2-server runs; the
    # 4-server run checks the model.
    def cpu(phase: Phase) -> float:
        return (phase.client_cpu + phase.redis_cpu) / phase.delivered

    def predict(kind: str, shards: int, senders: int, per_send: int) -> float:
        one, two = (getattr(results[0], kind), getattr(results[1], kind))
        per_message = cpu(one) + (cpu(two) - cpu(one)) * (shards - 1)
        send_wall = one.send_wall + (two.send_wall - one.send_wall) * (shards - 1)
        return min(cores / per_message, senders * per_send / send_wall)

    for t in results:
        n = f"{t.shards} redis"
        if t.shards > 1:
            for what, value in (
                ("channels", t.queue_spread),
                ("group members", t.member_spread),
                ("commands", t.command_spread),
            ):
                rows.append(
                    Row(
                        f"{n}: worst shard's {what} vs share",
                        pct(value),
                        "-",
                        "-",
                        f"<= {SPREAD_TARGET:.0%}",
                        value <= SPREAD_TARGET,
                    )
                )
        for kind, phase, base_phase in (("pairs", t.pairs, base.pairs), ("broadcast", t.broadcast, base.broadcast)):
            lost = phase.expected - phase.delivered
            throughput = phase.delivered / phase.seconds
            base_throughput = base_phase.delivered / base_phase.seconds
            rows.append(
                Row(
                    f"{n}: {kind} throughput ({PAIRS if kind == 'pairs' else RECEIVERS} receivers)",
                    rate(throughput),
                    rate(base_throughput),
                    f"{throughput / base_throughput:.2f}",
                    "-",
                    None,
                )
            )
            rows.append(Row(f"{n}: {kind} lost", f"{lost}/{phase.expected}", "-", "-", "0", lost == 0))
            client_cost = phase.client_cpu / max(phase.delivered, 1)
            redis_cost = phase.redis_cpu / max(phase.delivered, 1)
            base_redis = base_phase.redis_cpu / max(base_phase.delivered, 1)
            rows.append(Row(f"{n}: {kind} client CPU per message", us(client_cost), "-", "-", "-", None))
            flat = FLAT_TARGET if kind == "broadcast" and t.shards > 1 else None
            rows.append(
                Row(
                    f"{n}: {kind} Redis CPU per message",
                    us(redis_cost),
                    us(base_redis),
                    f"{redis_cost / base_redis:.2f}",
                    str(flat or "-"),
                    flat.met(redis_cost / base_redis) if flat else None,
                )
            )
            senders, per_send = (PAIRS, 1) if kind == "pairs" else (1, RECEIVERS * MEMBERS_PER_RECEIVER)
            predicted = predict(kind, t.shards, senders, per_send)
            checked = t.shards > 2  # the 1- and 2-server runs fit the model
            error = throughput / predicted - 1
            rows.append(
                Row(
                    f"{n}: {kind} model {rate(predicted)} vs measured",
                    rate(throughput),
                    rate(predicted),
                    f"{throughput / predicted:.2f}",
                    f"within {MODEL_TARGET:.0%}" if checked else "(fit)",
                    abs(error) <= MODEL_TARGET if checked else None,
                )
            )
    return rows


def main() -> int:
    parser = benchmark_parser(__doc__, "a 10x smaller run")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    prefix = f"scale{os.getpid()}:"
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"{'quick' if args.quick else 'full'} run: {PAIRS} send/receive pairs x {sizes.messages_per_pair} messages, "
        f"{sizes.group_sends} group sends to {RECEIVERS} x {MEMBERS_PER_RECEIVER} members; own redis-servers "
        f"(--redis-url is not used)",
        flush=True,
    )
    results = []
    for shards in SHARD_COUNTS:
        print(f"\n{shards} redis-server(s) ...", flush=True)
        t = measure(shards, sizes, prefix)
        results.append(t)
        for kind, phase in (("pairs", t.pairs), ("broadcast", t.broadcast)):
            print(
                f"  {kind}: {phase.delivered}/{phase.expected} in {phase.seconds:.2f}s, client CPU "
                f"{phase.client_cpu:.2f}s, Redis CPU {phase.redis_cpu:.2f}s, commands per server {phase.commands}",
                flush=True,
            )
    rows = report(results)
    print_table(rows, "1 redis")
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min) after the run")
    print_verdict(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
