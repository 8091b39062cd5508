"""The Redis Cluster layer under faults: a master SIGKILL and a reshard under traffic, and a slot held half-way.

Traffic is several threads, each with its own layer (as separate processes
would have): "pair" threads send numbered messages to their own channel a few
at a time and read them back with a blocking receive, and a "group" thread
sends numbered group messages to members spread over every master and reads
them back. Each thread counts what it sent, what came back (and twice), what
the layer refused (LayerConnectionError: the caller knows) and any other
exception. Figures are printed; docs/scaling-out.md's figures are those.

- failover: SIGKILL of a master with a replica; the time from the kill to the
  first round trip on a channel of the dead master's buckets, and the
  messages lost (at-most-once: what the dead master held may be lost).
- reshard: `redis-cli --cluster reshard` moves 3,000 slots (about 9 of the 48
  buckets) while traffic runs: no error reaches a client and nothing is lost.
- half-way: one bucket's slot MIGRATING/IMPORTING with some of its keys
  moved and others not (what clients meet during every reshard, here held
  still): send, receive, blocking receive and group send.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis

from channels_core.layers import LayerConnectionError, RedisChannelLayer
from tests.support.redis_cluster import NODE_TIMEOUT_MS, ClusterSetup

pytestmark = pytest.mark.slow

RECOVERY_TARGET = 10.0  # the target for a master failover
WINDOW = 5  # messages a pair thread has in flight at once
RESHARD_SLOTS = 2000
# Each traffic thread pauses this long between round trips: five threads in a tight loop would starve
# redis-cli and the cluster on a 2-core machine (a 2,000-slot reshard then takes 15 s instead of 3).
PACE = 0.005


def make_layer(url: str, prefix: str, **kwargs) -> RedisChannelLayer:
    kwargs.setdefault("blocking_timeout", 0.5)
    kwargs.setdefault("expiry", 30)
    return RedisChannelLayer(hosts=[url], prefix=prefix, **kwargs)


def bucket_of(layer: RedisChannelLayer, channel: str) -> int:
    """The index of the bucket (the layer's shard) holding `channel`'s queue."""
    return layer.keys.ring.get(channel.split("!")[0] + ("!" if "!" in channel else ""))


def slot_of(layer: RedisChannelLayer, channel: str) -> int:
    """The cluster slot of `channel`'s bucket."""
    return layer.shards[bucket_of(layer, channel)].slot


def names_where(predicate: Callable[[str], bool], stem: str, count: int, exclude: set[int] | None = None) -> list[str]:
    """`count` channel names `stem<N>` for which `predicate` holds."""
    found = []
    for i in range(100_000):
        name = f"{stem}{i}"
        if predicate(name):
            found.append(name)
            if len(found) == count:
                return found
    raise AssertionError(f"fewer than {count} names {stem}N match")


class Traffic(threading.Thread):
    """Base of the traffic threads: counters, the time of each successful round trip, a stop flag."""

    def __init__(self, url: str, prefix: str, label: str) -> None:
        super().__init__(daemon=True, name=label)
        self.url, self.prefix = url, prefix
        self.layer = make_layer(url, prefix)
        self.label = label
        self.stopping = threading.Event()
        self.expected = 0  # deliveries the layer accepted (a send that returned)
        self.delivered = 0
        self.duplicates = 0
        self.refused = 0  # LayerConnectionError from a send: the sender knows, nothing is lost
        self.read_errors = 0  # LayerConnectionError from a receive
        self.errors: list[str] = []  # anything else: never expected
        self.out_of_order = 0  # messages of one channel read after a later one
        self.ok_times: list[float] = []  # when each round trip completed
        self.ok_starts: list[float] = []  # when each of them started (its first send)

    def first_ok_after(self, t: float) -> float | None:
        """Seconds from `t` to the end of the first round trip that started after `t` (None if none did)."""
        later = [end for start, end in zip(self.ok_starts, self.ok_times, strict=True) if start > t]
        return later[0] - t if later else None

    def ok(self, started: float) -> None:
        self.ok_starts.append(started)
        self.ok_times.append(time.monotonic())

    def longest_gap(self, after: float = 0.0) -> float:
        times = [t for t in self.ok_times if t > after]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)

    def error(self, exc: BaseException) -> None:
        self.errors.append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.02)

    def stop(self) -> None:
        """Stop the thread, then read what is still queued with a fresh layer (late is not lost)."""
        self.stopping.set()
        self.join(10)
        self.layer.close()
        self.layer = make_layer(self.url, self.prefix)
        try:
            self.drain()
        finally:
            self.layer.close()

    def drain(self) -> None:
        raise NotImplementedError

    @property
    def lost(self) -> int:
        return self.expected - self.delivered


class PairTraffic(Traffic):
    """Sends `WINDOW` numbered messages to its channel, then reads them back with blocking receives."""

    def __init__(self, url: str, prefix: str, channel: str) -> None:
        super().__init__(url, prefix, f"pair {channel}")
        self.channel = channel
        self.got: set[int] = set()
        self.last = -1

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            batch = []
            started = time.monotonic()
            for _ in range(WINDOW):
                try:
                    self.layer.send(self.channel, {"n": n})
                except LayerConnectionError:
                    self.refused += 1
                    time.sleep(0.02)
                    break
                except Exception as exc:
                    self.error(exc)
                    break
                finally:
                    n += 1
                self.expected += 1
                batch.append(n - 1)
            self.read(batch, 1.0)
            # A round trip: the whole batch came back (a batch cut short by a fault only ends with the timeout).
            if batch and all(k in self.got for k in batch):
                self.ok(started)
            time.sleep(PACE)

    def read(self, batch: list[int], timeout: float, block: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(k in self.got for k in batch):
            try:
                _, message = self.layer.receive([self.channel], block=block)
            except LayerConnectionError:
                self.read_errors += 1
                time.sleep(0.02)
                continue
            except Exception as exc:
                self.error(exc)
                continue
            if message is None:
                if not block:
                    return
                continue
            if message["n"] in self.got:
                self.duplicates += 1
            else:
                self.got.add(message["n"])
                self.delivered += 1
                # One channel is one list in one slot, which moves whole: its order holds.
                self.out_of_order += message["n"] < self.last
                self.last = max(self.last, message["n"])

    def drain(self) -> None:
        self.read([-1], 1.0, block=False)


class GroupTraffic(Traffic):
    """Sends numbered messages to a group whose members sit on every master and reads each member's copy."""

    def __init__(self, url: str, prefix: str, members: list[str]) -> None:
        super().__init__(url, prefix, "group")
        self.members = members
        self.got: dict[str, set[int]] = {m: set() for m in members}
        self.accepted: set[int] = set()  # group sends that returned
        self.partial = 0  # copies of group sends that raised: a send is not atomic across buckets
        for member in members:
            self.layer.group_add("traffic", member)

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                self.layer.send_group("traffic", {"n": n})
            except LayerConnectionError:
                # Some buckets may have got it: their copies are read (and not counted as expected).
                self.refused += 1
                time.sleep(0.02)
                n += 1
                continue
            except Exception as exc:
                self.error(exc)
                n += 1
                continue
            self.expected += len(self.members)
            self.accepted.add(n)
            self.read(n, 1.0)
            if all(n in got for got in self.got.values()):  # a round trip: every member got its copy
                self.ok(started)
            n += 1
            time.sleep(PACE)

    def read(self, n: int, timeout: float, block: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(n in got for got in self.got.values()):
            try:
                channel, message = self.layer.receive(self.members, block=block)
            except LayerConnectionError:
                self.read_errors += 1
                time.sleep(0.02)
                continue
            except Exception as exc:
                self.error(exc)
                continue
            if message is None:
                if not block:
                    return
                continue
            if message["n"] in self.got[channel]:
                self.duplicates += 1
                continue
            self.got[channel].add(message["n"])
            if message["n"] in self.accepted:
                self.delivered += 1
            else:
                self.partial += 1

    def drain(self) -> None:
        self.read(-1, 1.0, block=False)


def start_traffic(cluster: ClusterSetup, prefix: str, hit: Callable[[int], bool], pairs_each: int = 2):
    """Pair threads on channels whose bucket slot is a `hit` (where the fault is) and on others, and a group
    thread whose members are 2 channels on hit slots and 2 on each master serving no hit slot."""
    probe = make_layer(cluster.url(), prefix)
    try:
        on_hit = names_where(lambda c: hit(slot_of(probe, c)), "hit", pairs_each)
        other = names_where(lambda c: not hit(slot_of(probe, c)), "other", pairs_each)
        members = names_where(lambda c: hit(slot_of(probe, c)), "member.hit", 2)
        for index, master in enumerate(cluster.masters()):
            if not any(hit(first) or hit(last) for first, last in master.slots):
                members += names_where(lambda c, m=master: m.serves(slot_of(probe, c)), f"member{index}.", 2)
    finally:
        probe.close()
    pairs = [PairTraffic(cluster.url(), prefix, c) for c in on_hit + other]
    group = GroupTraffic(cluster.url(), prefix, members)
    for thread in [*pairs, group]:
        thread.start()
    return pairs[:pairs_each], pairs[pairs_each:], group


def wait_all_ok(threads: list[Traffic], since: float, limit: float) -> None:
    deadline = since + limit
    while time.monotonic() < deadline and not all(t.first_ok_after(since) for t in threads):
        time.sleep(0.05)


def summary(threads: list[Traffic]) -> dict[str, int]:
    return {
        "expected": sum(t.expected for t in threads),
        "delivered": sum(t.delivered for t in threads),
        "lost": sum(t.lost for t in threads),
        "duplicates": sum(t.duplicates for t in threads),
        "refused": sum(t.refused for t in threads),
        "read_errors": sum(t.read_errors for t in threads),
        "errors": sum(len(t.errors) for t in threads),
        "out_of_order": sum(t.out_of_order for t in threads),
        "copies_of_refused_group_sends": sum(getattr(t, "partial", 0) for t in threads),
    }


def watch_promotion(replica, promoted: list[float]) -> None:
    """Append the time `replica` first reports itself master (ROLE, polled every 10 ms, for 15 s)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if replica.call("ROLE")[0] == "master":
                promoted.append(time.monotonic())
                return
        except redis.RedisError:
            pass
        time.sleep(0.01)


# -- a master SIGKILL under traffic -------------------------------------------------------------


def test_master_sigkill_under_traffic(key_prefix):
    with ClusterSetup(masters=3, replicas=1) as cluster:
        victim = cluster.masters()[0]
        hit, other, group = start_traffic(cluster, key_prefix, victim.serves)
        threads = [*hit, *other, group]
        try:
            time.sleep(1.0)
            assert all(t.ok_times for t in threads), "no round trip before the kill"
            replica = cluster.node(next(r for r in cluster.replicas() if r.master_id == victim.node_id))
            promoted: list[float] = []
            watcher = threading.Thread(target=watch_promotion, args=(replica, promoted), daemon=True)
            watcher.start()
            killed_at = cluster.kill_master(0)
            failed_over = cluster.wait_failover() - killed_at
            watcher.join(10)
            wait_all_ok(threads, killed_at, 30)
            time.sleep(1.0)  # traffic on the promoted replica, and late messages
        finally:
            for t in threads:
                t.stop()
        recover_hit = [t.first_ok_after(killed_at) for t in hit]
        recover_other = [t.first_ok_after(killed_at) for t in other]
        recover_group = group.first_ok_after(killed_at)
        gaps = [t.longest_gap(killed_at - 1) for t in threads]
        pairs, groups = summary([*hit, *other]), summary([group])

        def shown(xs):
            return ", ".join("none" if x is None else f"{x:.2f}s" for x in xs)

        print(
            f"\nCluster master SIGKILL (3 masters + 3 replicas, cluster-node-timeout {NODE_TIMEOUT_MS} ms, "
            f"{len(hit) + len(other)} pair threads with {WINDOW} in flight + 1 group thread over 6 members): "
            f"replica promoted after {promoted[0] - killed_at:.2f}s, every node's cluster_state ok after "
            f"{failed_over:.2f}s; first round trip on the dead "
            f"master's buckets {shown(recover_hit)}, on the others {shown(recover_other)}, "
            f"group {shown([recover_group])}; longest gap between round trips per thread (hit, other, group) "
            f"{shown(gaps)}; "
            f"pairs: {pairs}; group: {groups}; errors: {[e for t in threads for e in t.errors][:5]}"
        )
        assert all(r is not None and r < RECOVERY_TARGET for r in recover_hit + recover_other + [recover_group])
        # The dead master's buckets can only be served once its replica is master.
        assert promoted and all(r >= promoted[0] - killed_at - 0.05 for r in recover_hit), (promoted, recover_hit)
        # At most once: what was in flight when the master died may be lost, nothing more.
        assert pairs["lost"] <= len(hit + other) * WINDOW
        assert groups["lost"] <= 2 * len(group.members)
        assert pairs["errors"] == groups["errors"] == 0, [e for t in threads for e in t.errors][:5]
        assert pairs["out_of_order"] == 0


# -- resharding and a slot held half-way (one cluster without replicas for both) -----------------


@pytest.fixture(scope="module")
def cluster3():
    with ClusterSetup(masters=3, replicas=0) as cluster:
        yield cluster


def test_reshard_under_traffic(cluster3, key_prefix):
    cluster = cluster3
    source, target = cluster.masters()[0], cluster.masters()[1]
    # redis-cli takes the source's lowest slots first: traffic and group members sit on those.
    moving = set(sorted(slot for first, last in source.slots for slot in range(first, last + 1))[:RESHARD_SLOTS])
    hit, other, group = start_traffic(cluster, key_prefix, moving.__contains__)
    threads = [*hit, *other, group]
    try:
        time.sleep(0.5)
        started = time.monotonic()
        tool = cluster.reshard(0, 1, RESHARD_SLOTS)
        code = tool.wait(120)
        took = time.monotonic() - started
        cluster.wait_ready()  # every node (replicas by gossip) knows the new owners
        time.sleep(0.5)
    finally:
        for t in threads:
            t.stop()
    after = {m.node_id: m.slot_count for m in cluster.masters()}
    pairs, groups = summary([*hit, *other]), summary([group])
    print(
        f"\nCluster reshard under traffic: redis-cli moved {RESHARD_SLOTS} slots in {took:.1f}s "
        f"(exit {code}); {len(hit) + len(other)} pair threads + 1 group thread: pairs {pairs}; group {groups}; "
        f"longest gap between round trips {max(t.longest_gap(started) for t in threads):.2f}s; "
        f"errors: {[e for t in threads for e in t.errors][:5]}"
    )
    assert code == 0, tool.output()[-3000:]
    assert after[source.node_id] == source.slot_count - RESHARD_SLOTS
    assert after[target.node_id] == target.slot_count + RESHARD_SLOTS
    assert all(v == 0 for k, v in pairs.items() if k not in ("expected", "delivered")), pairs
    assert all(v == 0 for k, v in groups.items() if k not in ("expected", "delivered")), groups


class HalfWay:
    """A bucket of `layer` whose slot moves from its master to another, stopped after `moved` channels' keys."""

    def __init__(self, cluster: ClusterSetup, layer: RedisChannelLayer, stem: str, count: int) -> None:
        self.cluster, self.layer = cluster, layer
        self.bucket = bucket_of(layer, f"{stem}0")
        self.slot = layer.shards[self.bucket].slot
        self.channels = names_where(lambda c: bucket_of(layer, c) == self.bucket, stem, count)
        self.source = cluster.master_for_slot(self.slot)
        self.target = next(m for m in cluster.masters() if m.node_id != self.source.node_id)
        self.migration = None

    def queue_key(self, channel: str) -> str:
        return self.layer.keys.key_on(self.bucket, channel).decode()

    def keys_on_source(self) -> set[str]:
        """The keys of the slot the source still holds (GETKEYSINSLOT: no ASK for keys that have left)."""
        return set(self.cluster.node(self.source).call("CLUSTER", "GETKEYSINSLOT", self.slot, 100_000))

    def keys_of(self, channel: str) -> list[str]:
        """Every key of `channel` that exists now (its queue, with statistics on its counters too)."""
        node = self.cluster.node(self.source)
        keys = [self.layer.keys.key_on(self.bucket, channel)]
        if self.layer.statistics_enabled:
            keys.append(self.layer.keys.stats_key(channel, self.bucket))
        return [k.decode() for k in keys if node.call("EXISTS", k)]

    def begin(self, moved: list[str]) -> None:
        keys = [k for channel in moved for k in self.keys_of(channel)]
        assert keys, "nothing to move: the channels hold no keys"
        self.migration = self.cluster.migrate_slot(self.slot, self.source, self.target, keys=keys, finish=False)

    def finish(self) -> None:
        error = self.finish_or_force()
        assert error is None, f"the migration could not finish: {error}"

    def begin_group(self, group: str, alone: bool = False) -> None:
        """Start the migration with `group`'s key of this bucket moved, with its side keys (generation
        "#", cache ":", a process queue's ":name!" members...) or `alone`: redis-cli moves keys in
        batches of 10 in no particular order, so a reshard can stop between any two of them."""
        group_key = self.layer.keys.group_key(group, self.bucket).decode()
        keys = [group_key] if alone else [k for k in self.keys_on_source() if k.startswith(group_key)]
        self.migration = self.cluster.migrate_slot(self.slot, self.source, self.target, keys=keys, finish=False)

    def finish_or_force(self) -> Exception | None:
        """Finish the migration; if MIGRATE fails (BUSYKEY), finish it with REPLACE so the next test finds a
        consistent cluster, and return the error. Nothing if already finished."""
        if self.migration is None:
            return None
        migration, self.migration = self.migration, None
        try:
            migration.move_keys()
            error = None
        except redis.ResponseError as exc:
            error = exc
            migration.move_keys(replace=True)
        migration.finish()
        self.cluster.wait_ready()
        return error

    def stranded(self) -> int:
        """Keys left on the old master in the slot it no longer serves: messages no client can read."""
        return self.cluster.node(self.source).call("CLUSTER", "COUNTKEYSINSLOT", self.slot)


def read_all(layer: RedisChannelLayer, channels: list[str], block: bool = False) -> list[tuple[str, dict]]:
    out = []
    while True:
        channel, message = layer.receive(channels, block=block)
        if message is None:
            return out
        out.append((channel, message))


def test_a_slot_held_half_way_send_and_receive_follow_ask(cluster3, key_prefix):
    # Statistics off: a send touches one key, so the cluster answers ASK or serves it, never TRYAGAIN.
    layer = make_layer(cluster3.url(), key_prefix, statistics=False, blocking_timeout=2)
    half = HalfWay(cluster3, layer, "ask", 3)
    moved, stay, fresh = half.channels
    try:
        layer.send(moved, {"n": 1})
        layer.send(stay, {"n": 1})
        half.begin([moved])
        # send: to a moved queue (ASK to the target), to one still on the source, to a new one (ASK).
        layer.send(moved, {"n": 2})
        layer.send(stay, {"n": 2})
        layer.send(fresh, {"n": 1})
        # receive, one channel at a time: each single-key pop is served where its key is.
        assert read_all(layer, [moved]) == [(moved, {"n": 1}), (moved, {"n": 2})]
        assert read_all(layer, [stay]) == [(stay, {"n": 1}), (stay, {"n": 2})]
        assert read_all(layer, [fresh]) == [(fresh, {"n": 1})]
        # nothing was written to the source for a queue that had left it
        assert half.queue_key(moved) not in half.keys_on_source()
    finally:
        half.finish_or_force()
        assert half.stranded() == 0
        layer.flush()
        layer.close()


def test_a_slot_held_half_way_blocking_receive_waits_where_sends_go(cluster3, key_prefix):
    # A blocking receive on a queue that exists nowhere while its slot migrates: the source answers ASK
    # (a missing key has left, as far as it knows), and a send goes to the target after ASK too; the
    # pop must wait there, or the message sits unread on the target for the whole migration.
    layer = make_layer(cluster3.url(), key_prefix, statistics=False, blocking_timeout=2)
    half = HalfWay(cluster3, layer, "blk", 2)
    moved, blocked = half.channels
    try:
        layer.send(moved, {"n": 1})
        half.begin([moved])
        # a message waiting in a queue that has moved
        started = time.monotonic()
        assert layer.receive([moved], block=True) == (moved, {"n": 1})
        assert time.monotonic() - started < 1.0
        # a message sent while the pop waits
        got: list = []
        reader = threading.Thread(target=lambda: got.append(layer.receive([blocked], block=True)))
        reader.start()
        time.sleep(0.3)
        layer.send(blocked, {"n": 1})
        reader.join(5)
        assert got == [(blocked, {"n": 1})]
    finally:
        half.finish_or_force()
        layer.flush()
        layer.close()


@pytest.mark.parametrize("moved", ["a member queue", "the group keys", "the group key alone"])
def test_a_slot_held_half_way_group_send(cluster3, key_prefix, moved):
    # A group's members in one bucket, some of the bucket's keys moved: the group send must reach each
    # member once, or raise LayerConnectionError having reached none; finishing the migration must then
    # work (a key written on the target while the source still holds it fails MIGRATE with BUSYKEY).
    layer = make_layer(cluster3.url(), key_prefix, statistics=False)
    half = HalfWay(cluster3, layer, "grp", 3)
    stay, member, empty = half.channels
    for channel in half.channels:
        layer.group_add("halfway", channel)
    try:
        layer.send(stay, {"warm": 1})
        layer.send(member, {"warm": 1})
        if moved == "a member queue":
            half.begin([member])
        else:
            half.begin_group("halfway", alone=moved == "the group key alone")
        try:
            layer.send_group("halfway", {"g": 1})
            raised = None
        except LayerConnectionError as exc:
            raised = exc
        # Finish first, then read: a copy written on the target for a queue the source still holds
        # would make MIGRATE fail (BUSYKEY), as it would stop `redis-cli --cluster reshard`.
        finished = half.finish_or_force()
        got = read_all(layer, [stay]) + read_all(layer, [member]) + read_all(layer, [empty])
        copies = sorted(c for c, m in got if "g" in m)
        print(f"\ngroup send with {moved} moved: raised {raised!r}, copies {copies}, finishing: {finished}")
        assert finished is None, f"the migration could not finish: {finished}"
        assert copies == ([] if raised else sorted(half.channels)), copies
        assert sorted(c for c, m in got if "warm" in m) == sorted([stay, member])
    finally:
        half.finish_or_force()
    try:
        assert half.stranded() == 0
        layer.send_group("halfway", {"g": 2})
        got = read_all(layer, [stay]) + read_all(layer, [member]) + read_all(layer, [empty])
        assert sorted(c for c, m in got if m.get("g") == 2) == sorted(half.channels)
    finally:
        layer.flush()
        layer.close()


def test_operations_started_half_way_complete_when_the_slot_finishes(cluster3, key_prefix):
    # Statistics on (the default): a send also touches the bucket's counters, which stay on the source
    # while the queue has moved, so the cluster answers TRYAGAIN until the slot finishes; the layer retries.
    layer = make_layer(cluster3.url(), key_prefix)
    half = HalfWay(cluster3, layer, "later", 3)
    moved, stay, member = half.channels
    layer.group_add("later", member)
    layer.group_add("later", moved)
    results: dict[str, object] = {}

    def attempt(name: str, op: Callable[[], object]) -> threading.Thread:
        def run() -> None:
            try:
                results[name] = op()
            except Exception as exc:
                results[name] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    try:
        layer.send(moved, {"n": 1})
        layer.send(stay, {"n": 1})
        half.begin([moved])
        threads = [
            attempt("send moved", lambda: layer.send(moved, {"n": 2})),
            attempt("send stay", lambda: layer.send(stay, {"n": 2})),
            attempt("group send", lambda: layer.send_group("later", {"g": 1})),
        ]
        time.sleep(0.3)
        half.finish()
        for thread in threads:
            thread.join(10)
        assert all(v is None for v in results.values()), results
        got = read_all(layer, [moved, stay, member])
        assert sorted((c, *next(iter(m.items()))) for c, m in got) == sorted(
            [(moved, "n", 1), (moved, "n", 2), (stay, "n", 1), (stay, "n", 2), (moved, "g", 1), (member, "g", 1)]
        )
        assert half.stranded() == 0
    finally:
        layer.flush()
        layer.close()


@pytest.mark.parametrize("moved", ["a member queue", "the group keys", "the group key alone"])
def test_a_slot_held_half_way_group_add_and_discard(cluster3, key_prefix, moved):
    # Membership changes (a process channel's sub key, the group's generation and cache keys) while the
    # slot is half-way: each either works or raises LayerConnectionError, finishing the migration works
    # (nothing was written on the target for a key the source still held), and the membership is right.
    layer = make_layer(cluster3.url(), key_prefix, statistics=False)
    half = HalfWay(cluster3, layer, "plain", 2)
    plain1, plain2 = half.channels
    process = names_where(lambda c: bucket_of(layer, c + "!") == half.bucket, "srv", 1)[0] + "!"
    proc_a, proc_b = process + "a", process + "b"
    layer.group_add("ga", proc_a)
    layer.group_add("ga", plain1)
    try:
        layer.send(plain1, {"warm": 1})
        if moved == "a member queue":
            half.begin([plain1])
        else:
            half.begin_group("ga", alone=moved == "the group key alone")
        changes = [
            lambda: layer.group_add("ga", proc_b),
            lambda: layer.group_add("ga", plain2),
            lambda: layer.group_discard("ga", plain1),
        ]
        refused = []

        def attempt(change: Callable[[], None]) -> None:
            try:
                change()
            except LayerConnectionError:
                refused.append(change)

        # At once: a refused change has retried for about a second before it raises.
        threads = [threading.Thread(target=attempt, args=(change,)) for change in changes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        finished = half.finish_or_force()
        print(f"\ngroup add/discard with {moved} moved: {len(refused)} of 3 refused, finishing: {finished}")
        assert finished is None, f"the migration could not finish: {finished}"
        for change in changes:
            if change in refused:
                change()
        assert sorted(layer.group_channels("ga")) == sorted([proc_a, proc_b, plain2])
        layer.send_group("ga", {"g": 1})
        got = read_all(layer, [process]) + read_all(layer, [plain1]) + read_all(layer, [plain2])
        assert sorted(c for c, m in got if "g" in m) == sorted([proc_a, proc_b, plain2])
        assert half.stranded() == 0
    finally:
        half.finish_or_force()
        layer.flush()
        layer.close()
