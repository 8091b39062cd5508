"""Scaling out: spread, Redis CPU per message and throughput on 1, 2 and 4 Redis processes, sharded and Cluster.

    python benchmarks/scale_bench.py [--quick] [--no-cluster | --no-shards]

Starts its own redis-servers (private, on free ports, no persistence) and
measures, in one run, six topologies: 1, 2 and 4 servers as client-side
shards of one `RedisChannelLayer`, and Redis Clusters of 1, 2 and 4 masters
without replicas (`tests/support/redis_cluster.ClusterSetup`; the layer's 48
buckets spread over the masters). For each:

1. spread: how many of 10,000 random channel names (plain, `x!y` process and
   `x?y` single-reader, in equal parts) and of the membership entries of
   1,000 groups each server owns, and how many commands each server ran
   (INFO commandstats) over a mixed workload (send/receive on 10,000 random
   channels; add 3 members to each of 1,000 groups, send, discard; 10x fewer
   with --quick): worst server's distance from its share (target: 10%);
2. pairs: PAIRS sender processes each `send` to 16 channels, PAIRS receiver
   processes `receive(block=True)` them; messages per second, and CPU per
   message of the clients (their own process time) and of Redis
   (`used_cpu_sys` + `used_cpu_user` from INFO, summed over the servers);
3. broadcast, three times: one process `send_group`s to a group whose
   members are the process channels of RECEIVERS receiver processes (like
   interface servers), each receiver counting its deliveries. "home": every
   receiver's queue on the group's home shard (which holds the group's
   index); "one": all on one other shard, on another server where there is
   one; "spread": receiver r's queue on server r mod N, on Cluster each on a
   bucket of its own. Once the sender has read the group's index (its first
   send), each send is one round trip per server holding members: "home"
   and "one" 1, "spread" min(N, 4). Placement is chosen, not left to the
   servers' random ports, so runs compare. Reported: deliveries per second, scripts per send (EVALSHA
   calls the servers counted) and round trips per send (from the placement),
   Redis CPU per delivery (target for "home" and "one": within 25% of the
   1-server run, i.e. flat).

The model (what each process costs per message) is fitted on the 1- and
2-server client-side runs and the 1-master Cluster (client-side shards run
one script per round trip; a Cluster master runs several buckets' scripts
in one, which tells the two costs apart) and checked on the others (target:
within 25%): Redis CPU per group send = a + w * round trips + s * scripts
per send (w: waking a server and its socket I/O; s: one script; a: the
members' queues and their receivers' reads); messages/s = the lower
of cores / CPU per message of all processes (clients and Redis share this
machine's cores) and senders / their round trip per send, each linear in
servers (pairs) or in round trips and scripts per send (broadcast; the
sender's round trip in round trips only). Loss is counted
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import benchmark_parser  # noqa: E402
from report import Row, Target, print_table, print_verdict  # noqa: E402

from channels_core.layers import names  # noqa: E402
from channels_core.layers.redis import RedisChannelLayer, group_index  # noqa: E402
from channels_core.layers.redis.cluster import BUCKET_TAGS  # noqa: E402
from tests.support.redis_cluster import ClusterSetup  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

TOPOLOGIES = (("shards", 1), ("shards", 2), ("shards", 4), ("cluster", 1), ("cluster", 2), ("cluster", 4))
PAIRS = 2
CHANNELS_PER_PAIR = 16
RECEIVERS = 4
MEMBERS_PER_RECEIVER = 50
PLACEMENTS = ("home", "one", "spread")
GROUP = "scale.room"
WARM = "scale.warm"
IDLE_GIVE_UP = 10.0  # seconds without a message before a receiver counts the rest as lost
SPREAD_TARGET = 0.10
FLAT_TARGET = Target(1.25)
MODEL_TARGET = 0.25


@dataclass(frozen=True)
class Sizes:
    messages_per_pair: int
    group_sends: int
    spread_channels: int


FULL = Sizes(messages_per_pair=10_000, group_sends=2000, spread_channels=10_000)
QUICK = Sizes(messages_per_pair=1_000, group_sends=200, spread_channels=3_000)


# -- names --------------------------------------------------------------------------


def word(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(string.ascii_letters, k=n))


def random_channels(rng: random.Random, count: int) -> list[str]:
    """Plain, process (`x!y`) and single-reader (`x?y`) channel names in equal parts."""
    kinds = [
        lambda: f"websocket.receive.{word(rng, 8)}",
        lambda: f"interface.response.{word(rng, 8)}!{word(rng, 12)}",
        lambda: f"http.response?{word(rng, 12)}",
    ]
    return [kinds[i % 3]() for i in range(count)]


def worst_share(counts: list[int]) -> float:
    """The largest distance of a server's count from its fair share, as a fraction of the share."""
    fair = sum(counts) / len(counts)
    return max(abs(c / fair - 1) for c in counts)


# -- the Redis processes ------------------------------------------------------------------


@dataclass
class Deployment:
    """Redis processes started for one topology, and how the layer's shards map onto them."""

    kind: str  # "shards" (client-side) or "cluster"
    count: int  # servers (masters)
    hosts: list[str]  # the layer's `hosts`
    nodes: list[Any]  # one per server, each with `.client()` (a plain redis-py client)
    server_of_shard: list[int] = field(default_factory=list)  # layer shard (bucket) index -> server index
    stop: Callable[[], None] = lambda: None

    @property
    def name(self) -> str:
        return f"{self.count} redis" if self.kind == "shards" else f"cluster {self.count}m"


def deploy(kind: str, count: int) -> Deployment:
    if kind == "shards":
        servers = [RedisServer() for _ in range(count)]
        try:
            for server in servers:
                server.start()
        except BaseException:
            for server in servers:
                server.cleanup()
            raise

        def stop() -> None:
            for server in servers:
                server.cleanup()

        return Deployment(kind, count, [s.url for s in servers], servers, list(range(count)), stop)
    cluster = ClusterSetup(masters=count, replicas=0)
    try:
        cluster.start()
        port_index = {node.port: i for i, node in enumerate(cluster.nodes)}
        owners = [port_index[cluster.master_for_slot(slot).port] for _, slot in BUCKET_TAGS]
    except BaseException:
        cluster.cleanup()
        raise
    return Deployment(kind, count, [cluster.url()], list(cluster.nodes), owners, cluster.cleanup)


def server_totals(deployment: Deployment) -> tuple[float, list[int], list[int]]:
    """Redis CPU seconds (all servers), workload commands per server and EVALSHA calls per server, so far."""
    cpu = 0.0
    commands, scripts = [], []
    for node in deployment.nodes:
        client = node.client()
        try:
            info = client.info("cpu")
            stats = client.info("commandstats")
        finally:
            client.close()
        cpu += float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
        commands.append(sum(int(v["calls"]) for k, v in stats.items() if k.removeprefix("cmdstat_") in WORKLOAD))
        ev = stats.get("cmdstat_evalsha", {})
        scripts.append(int(ev.get("calls", 0)) - int(ev.get("failed_calls", 0)))
    return cpu, commands, scripts


WORKLOAD = ("evalsha", "eval", "blpop", "blmpop", "bzpopmin", "lpop", "rpush", "zadd", "del", "unlink")


# -- workers (child processes) --------------------------------------------------------


def make_layer(hosts: list[str], prefix: str) -> RedisChannelLayer:
    return RedisChannelLayer(hosts=hosts, prefix=prefix, expiry=120, capacity=10**6)


def sender(hosts, prefix, channels, count, start, results) -> None:
    layer = make_layer(hosts, prefix)
    layer.send(WARM, {"n": -1})
    start.wait()
    cpu, wall = time.process_time(), time.monotonic()
    for i in range(count):
        layer.send(channels[i % len(channels)], {"n": i, "text": "x" * 80})
    results.put(("send", count, time.process_time() - cpu, time.monotonic() - wall))
    layer.close()


def receiver(hosts, prefix, channels, expected, start, results) -> None:
    layer = make_layer(hosts, prefix)
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


def group_sender(hosts, prefix, group, count, start, results) -> None:
    layer = make_layer(hosts, prefix)
    layer.send_group(group, {"n": -1})  # connections made, scripts loaded (the receivers skip it)
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
    scripts: int  # EVALSHA calls, all servers
    send_wall: float  # seconds one sender process took per send (its round trip)
    sends: int
    round_trips: int = 1  # per send, from the placement (broadcast)
    placement: str = ""

    @property
    def redis_per_send(self) -> float:
        return self.redis_cpu / self.sends

    @property
    def scripts_per_send(self) -> float:
        return self.scripts / self.sends

    @property
    def cpu_per_message(self) -> float:
        return (self.client_cpu + self.redis_cpu) / max(self.delivered, 1)


def run_phase(deployment: Deployment, targets: list[tuple], expected: int, sends: int) -> Phase:
    """Start the processes `targets` (function, args), release them together, wait, and account."""
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=fn, args=(*args, start, results), daemon=True) for fn, args in targets]
    for p in procs:
        p.start()
    time.sleep(0.5 + 0.1 * len(procs))  # connections made, scripts loaded
    cpu_before, cmd_before, scripts_before = server_totals(deployment)
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
    cpu_after, cmd_after, scripts_after = server_totals(deployment)
    receivers = [r for r in reports if r[0] == "receive"]
    return Phase(
        delivered=sum(r[1] for r in receivers),
        expected=expected,
        seconds=max(r[3] for r in receivers) - t0,
        client_cpu=sum(r[2] for r in reports),
        redis_cpu=cpu_after - cpu_before,
        commands=[a - b for a, b in zip(cmd_after, cmd_before, strict=True)],
        scripts=sum(scripts_after) - sum(scripts_before),
        send_wall=statistics.mean(r[3] / r[1] for r in reports if r[0] != "receive"),
        sends=sends,
    )


def receiver_prefixes(
    layer: RedisChannelLayer, deployment: Deployment, placement: str, rng: random.Random
) -> tuple[list[str], int]:
    """Process-channel prefixes for the receivers, placed as `placement` says; and the round trips per send."""
    index = group_index.index_of(layer)
    home = index.home(GROUP) if index else 0
    owner = deployment.server_of_shard
    shards = range(len(layer.shards))
    if placement == "home":
        wanted = [home] * RECEIVERS
    elif placement == "one":
        # One shard, not the home (when there is another): the index's worst case for one member shard.
        others = [s for s in shards if s != home and owner[s] != owner[home]] or [s for s in shards if s != home]
        wanted = [(others or [home])[0]] * RECEIVERS
    else:
        # Receiver r on server r mod N; on Cluster each on a bucket of its own, not the home's.
        wanted, used = [], {home}
        for r in range(RECEIVERS):
            server = r % deployment.count
            if deployment.kind == "shards":
                shard = server
            else:
                shard = next(s for s in shards if owner[s] == server and s not in used)
            used.add(shard)
            wanted.append(shard)
    prefixes = []
    for r, shard in enumerate(wanted):
        while True:
            prefix = f"bc{r}.{word(rng, 6)}!"
            if layer.ring.get(prefix) == shard:
                prefixes.append(prefix)
                break
    # Steady state: the sender cached the group's index, so one round trip per server holding
    # members (the home is read again only after the index changed).
    return prefixes, len({owner[s] for s in wanted})


@dataclass
class Topology:
    deployment: Deployment
    queue_spread: float
    member_spread: float
    command_spread: float
    pairs: Phase
    broadcasts: dict[str, Phase]

    @property
    def name(self) -> str:
        return self.deployment.name

    @property
    def servers(self) -> int:
        return self.deployment.count


def measure(kind: str, count: int, sizes: Sizes, prefix: str) -> Topology:
    deployment = deploy(kind, count)
    try:
        hosts = deployment.hosts
        layer = make_layer(hosts, prefix)  # the layer's own ring, over its own shard labels
        owner = deployment.server_of_shard
        rng = random.Random(14)
        queues = [names.list_name(c) for c in random_channels(rng, 10_000)]
        members = [names.list_name(c) for _ in range(1000) for c in random_channels(rng, rng.randint(1, 10))]
        per_queue, per_member = [0] * count, [0] * count
        for q in queues:
            per_queue[owner[layer.ring.get(q)]] += 1
        for m in members:
            per_member[owner[layer.ring.get(m)]] += 1

        _, before, _ = server_totals(deployment)
        mixed_workload(layer, rng, sizes.spread_channels, sizes.spread_channels // 10)
        _, after, _ = server_totals(deployment)
        mixed_commands = [a - b for a, b in zip(after, before, strict=True)]

        pair_channels = [
            [f"pair{p}.{c}.{''.join(rng.choices(string.ascii_lowercase, k=6))}" for c in range(CHANNELS_PER_PAIR)]
            for p in range(PAIRS)
        ]
        n = sizes.messages_per_pair
        targets = [(sender, (hosts, prefix, chans, n)) for chans in pair_channels]
        targets += [(receiver, (hosts, prefix, chans, n)) for chans in pair_channels]
        pairs = run_phase(deployment, targets, PAIRS * n, PAIRS * n)

        broadcasts = {}
        for placement in PLACEMENTS:
            layer.flush()
            prefixes, round_trips = receiver_prefixes(layer, deployment, placement, rng)
            for pfx in prefixes:
                for i in range(MEMBERS_PER_RECEIVER):
                    layer.group_add(GROUP, f"{pfx}m{i}")
            per_receiver = sizes.group_sends * MEMBERS_PER_RECEIVER
            targets = [(group_sender, (hosts, prefix, GROUP, sizes.group_sends))]
            # Each receiver also gets the sender's warm-up send: counted, then subtracted.
            targets += [(receiver, (hosts, prefix, [pfx], per_receiver + MEMBERS_PER_RECEIVER)) for pfx in prefixes]
            phase = run_phase(deployment, targets, RECEIVERS * per_receiver, sizes.group_sends)
            phase.delivered -= RECEIVERS * MEMBERS_PER_RECEIVER
            phase.round_trips, phase.placement = round_trips, placement
            broadcasts[placement] = phase
        layer.flush()
        layer.close()
        return Topology(
            deployment,
            worst_share(per_queue),
            worst_share(per_member),
            worst_share(mixed_commands) if count > 1 else 0.0,
            pairs,
            broadcasts,
        )
    finally:
        deployment.stop()


# -- report ------------------------------------------------------------------------------


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us"


def rate(value: float) -> str:
    return f"{value:,.0f}/s"


def pct(value: float) -> str:
    return f"{value:.1%}"


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares line y = a + b * x through `points` (b = 0 when every x is the same)."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - b * mx, b


def fit2(points: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """Least squares y = a + b * u + c * v through `points` (u, v, y), by the normal equations."""
    rows = [(1.0, u, v, y) for u, v, y in points]
    m = [[sum(r[i] * r[j] for r in rows) for j in range(4)] for i in range(3)]
    for col in range(3):  # Gauss-Jordan with partial pivoting
        pivot = max(range(col, 3), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        if abs(m[col][col]) < 1e-12:
            raise ValueError("the fitted runs do not tell round trips and scripts apart")
        m[col] = [x / m[col][col] for x in m[col]]
        for r in range(3):
            if r != col:
                m[r] = [x - m[r][col] * y for x, y in zip(m[r], m[col], strict=True)]
    return m[0][3], m[1][3], m[2][3]


@dataclass
class Model:
    """Per-message costs fitted on some runs (see the module docstring), to check on the others."""

    redis_per_send: tuple[float, float, float]  # broadcast: a + w * round trips + s * scripts per send
    broadcast_cpu: tuple[float, float, float]  # CPU per delivery of all processes, the same way
    broadcast_wall: tuple[float, float]  # the sender's seconds per send, linear in round trips per send
    pairs_cpu: tuple[float, float]  # CPU per message of all processes, linear in servers
    pairs_wall: tuple[float, float]  # a sender's seconds per send, linear in servers

    @classmethod
    def from_runs(cls, runs: list[Topology]) -> Model:
        bc = [ph for t in runs for ph in t.broadcasts.values()]

        def both(value: Callable[[Phase], float]) -> tuple[float, float, float]:
            try:
                return fit2([(ph.round_trips, ph.scripts_per_send, value(ph)) for ph in bc])
            except ValueError:  # no Cluster run (--no-cluster): one script per round trip everywhere
                a, b = fit([(ph.round_trips, value(ph)) for ph in bc])
                return a, b, 0.0

        return cls(
            both(lambda ph: ph.redis_per_send),
            both(lambda ph: ph.cpu_per_message),
            fit([(ph.round_trips, ph.send_wall) for ph in bc]),
            fit([(t.servers, t.pairs.cpu_per_message) for t in runs]),
            fit([(t.servers, t.pairs.send_wall) for t in runs]),
        )

    @staticmethod
    def at(line: tuple[float, ...], *x: float) -> float:
        return line[0] + sum(c * v for c, v in zip(line[1:], x, strict=True))

    def redis(self, phase: Phase) -> float:
        return self.at(self.redis_per_send, phase.round_trips, phase.scripts_per_send)

    def throughput(self, phase: Phase, servers: int, kind: str) -> float:
        cores = os.cpu_count() or 1
        if kind == "pairs":
            cpu, wall, senders, per_send = self.at(self.pairs_cpu, servers), self.at(self.pairs_wall, servers), PAIRS, 1
        else:
            cpu = self.at(self.broadcast_cpu, phase.round_trips, phase.scripts_per_send)
            wall = self.at(self.broadcast_wall, phase.round_trips)
            senders, per_send = 1, RECEIVERS * MEMBERS_PER_RECEIVER
        return min(cores / cpu, senders * per_send / wall)


def model_row(label: str, measured: float, predicted: float, checked: bool, fmt: Callable[[float], str]) -> Row:
    ratio = measured / predicted
    return Row(
        label,
        fmt(measured),
        fmt(predicted),
        f"{ratio:.2f}",
        f"within {MODEL_TARGET:.0%}" if checked else "(fit)",
        abs(ratio - 1) <= MODEL_TARGET if checked else None,
    )


def report(results: list[Topology]) -> list[Row]:
    rows: list[Row] = []
    base = results[0]
    # Client-side shards run one script per round trip; a 1-master Cluster runs several buckets'
    # scripts in one: together they tell the two costs apart.
    fitted = [t for t in results if t.servers <= 2 and t.deployment.kind == "shards"]
    fitted += [t for t in results if t.servers == 1 and t.deployment.kind == "cluster"]
    model = Model.from_runs(fitted)
    for t in results:
        n = t.name
        checked = t not in fitted
        if t.servers > 1:
            for what, value in (
                ("channels", t.queue_spread),
                ("group members", t.member_spread),
                ("commands", t.command_spread),
            ):
                rows.append(
                    Row(
                        f"{n}: worst server's {what} vs share",
                        pct(value),
                        "-",
                        "-",
                        f"<= {SPREAD_TARGET:.0%}",
                        value <= SPREAD_TARGET,
                    )
                )
        phases = [("pairs", t.pairs, base.pairs)] + [
            (f"broadcast {p}", t.broadcasts[p], base.broadcasts[p]) for p in PLACEMENTS
        ]
        for kind, phase, base_phase in phases:
            lost = phase.expected - phase.delivered
            throughput = phase.delivered / phase.seconds
            base_throughput = base_phase.delivered / base_phase.seconds
            rows.append(
                Row(
                    f"{n}: {kind} throughput",
                    rate(throughput),
                    rate(base_throughput),
                    f"{throughput / base_throughput:.2f}",
                    "-",
                    None,
                )
            )
            rows.append(Row(f"{n}: {kind} lost", f"{lost}/{phase.expected}", "-", "-", "0", lost == 0))
            rows.append(
                Row(
                    f"{n}: {kind} client CPU per message",
                    us(phase.client_cpu / max(phase.delivered, 1)),
                    "-",
                    "-",
                    "-",
                    None,
                )
            )
            redis_cost = phase.redis_cpu / max(phase.delivered, 1)
            base_redis = base_phase.redis_cpu / max(base_phase.delivered, 1)
            flat = FLAT_TARGET if kind in ("broadcast home", "broadcast one") and t is not base else None
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
            if kind != "pairs":
                rows.append(
                    Row(
                        f"{n}: {kind} scripts / round trips per send",
                        f"{phase.scripts_per_send:.2f} / {phase.round_trips}",
                        "-",
                        "-",
                        "-",
                        None,
                    )
                )
                rows.append(
                    model_row(
                        f"{n}: {kind} Redis CPU per send, model",
                        phase.redis_per_send,
                        model.redis(phase),
                        checked,
                        us,
                    )
                )
            kind_name = "pairs" if kind == "pairs" else "broadcast"
            rows.append(
                model_row(
                    f"{n}: {kind} throughput, model",
                    throughput,
                    model.throughput(phase, t.servers, kind_name),
                    checked,
                    rate,
                )
            )
    a, w, c = model.redis_per_send
    ca, cw, cs = model.broadcast_cpu
    print(
        f"\nmodel (fitted on {', '.join(t.name for t in fitted)}): Redis CPU per group send = {us(a)} + {us(w)} "
        f"x round trips + {us(c)} x scripts per send; CPU per delivery (all processes) = {us(ca)} + {us(cw)} x "
        f"round trips + {us(cs)} x scripts; "
        f"sender round trip = {us(model.broadcast_wall[0])} + "
        f"{us(model.broadcast_wall[1])} x round trips; pairs CPU per message = {us(model.pairs_cpu[0])} + "
        f"{us(model.pairs_cpu[1])} x servers"
    )
    return rows


def main() -> int:
    parser = benchmark_parser(__doc__, "a 10x smaller run")
    parser.add_argument("--no-cluster", action="store_true", help="client-side shards only")
    parser.add_argument("--no-shards", action="store_true", help="Cluster only (the model then cannot be fitted)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    prefix = f"scale{os.getpid()}:"
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"{'quick' if args.quick else 'full'} run: {PAIRS} send/receive pairs x {sizes.messages_per_pair} messages, "
        f"{sizes.group_sends} group sends to {RECEIVERS} x {MEMBERS_PER_RECEIVER} members (placements "
        f"{', '.join(PLACEMENTS)}); own redis-servers (--redis-url is not used)",
        flush=True,
    )
    results = []
    for kind, count in TOPOLOGIES:
        if (kind == "cluster" and args.no_cluster) or (kind == "shards" and args.no_shards):
            continue
        t = measure(kind, count, sizes, prefix)
        results.append(t)
        print(f"\n{t.name}:", flush=True)
        for label, phase in [("pairs", t.pairs)] + [(f"broadcast {p}", t.broadcasts[p]) for p in PLACEMENTS]:
            print(
                f"  {label}: {phase.delivered}/{phase.expected} in {phase.seconds:.2f}s, client CPU "
                f"{phase.client_cpu:.2f}s, Redis CPU {phase.redis_cpu:.3f}s ({us(phase.redis_per_send)} per send), "
                f"scripts per send {phase.scripts_per_send:.2f}, sender {phase.send_wall * 1e3:.2f} ms per send, "
                f"commands per server {phase.commands}",
                flush=True,
            )
    if args.no_shards:
        return 0
    rows = report(results)
    print_table(rows, "1 redis")
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min) after the run")
    print_verdict(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
