"""A throw-away Redis Cluster for tests: N masters, R replicas each, on free 127.0.0.1 ports.

Every node is a `redis-server --cluster-enabled yes` child process with its own
directory (cluster config file, log) and its own bus port (`cluster-port`, so
both ports come from `free_port()` instead of the fixed port + 10000). The
cluster is formed with `redis-cli --cluster create` (Debian's redis-tools) when
there are at least 3 masters, which is all redis-cli accepts; 1 or 2 masters
(for benchmarks) are joined by hand with the same commands redis-cli sends.

`cluster-node-timeout` is set low (1000 ms instead of Redis's 15000 ms) on
purpose: it is how long a master must be unreachable before the others mark it
failed and its replica starts an election, so it bounds a failover's duration.
With 1000 ms a SIGKILLed master is replaced in about 2-3 s, which keeps the
failover tests short; production clusters keep a larger timeout so a slow
network does not cause needless failovers. `repl-diskless-sync-delay 0` makes
a replica sync at once (the 5 s default would leave it empty, and a failover
then loses everything).

Processes die with the test process (Linux parent-death signal), are stopped
by their own PID in `cleanup()`, and their directories are removed. Start and
restart nodes from the thread that will outlive them (the test's main thread):
the parent-death signal follows the thread that started the child.

    with ClusterSetup(masters=3, replicas=1) as cluster:
        client = redis.cluster.RedisCluster.from_url(cluster.startup_urls()[0])
        killed_at = cluster.kill_master(0)
        cluster.wait_failover()
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from channels_core.test.processes import ChildProcess, free_port

SLOTS = 16384
NODE_TIMEOUT_MS = 1000
READY_TIMEOUT = 30.0
FAILOVER_TIMEOUT = 20.0
START_TIMEOUT = 10.0
CLI_TIMEOUT = 60.0
SERVER_ARGS = ["--repl-diskless-sync-delay", "0"]


def redis_cli() -> str:
    """The `redis-cli` executable (Debian package redis-tools; `.ci/run` installs it when missing)."""
    path = shutil.which("redis-cli")
    if path is None:
        raise RuntimeError("redis-cli not found: install Debian's redis-tools (`.ci/run` does)")
    return path


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """16384 slots split into `masters` contiguous ranges the way `redis-cli --cluster create` splits them."""
    per_node = SLOTS / masters
    ranges = []
    first = 0.0
    for i in range(masters):
        last = SLOTS - 1 if i == masters - 1 else int(first + per_node - 1)
        ranges.append((int(first), last))
        first = last + 1
    return ranges


@dataclass(frozen=True)
class NodeInfo:
    """One node as CLUSTER NODES describes it, plus the process behind it."""

    node_id: str
    port: int
    pid: int | None
    role: str  # "master" or "replica"
    slots: tuple[tuple[int, int], ...]  # inclusive ranges this master serves (empty for a replica)
    master_id: str | None  # for a replica: the node id of its master
    flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def slot_count(self) -> int:
        return sum(last - first + 1 for first, last in self.slots)

    def serves(self, slot: int) -> bool:
        return any(first <= slot <= last for first, last in self.slots)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def parse_cluster_nodes(text: str) -> list[NodeInfo]:
    """Parse CLUSTER NODES output (without pids: the caller knows them)."""
    nodes = []
    for line in text.strip().splitlines():
        parts = line.split()
        # "myself" depends on who is asked: dropped, so views from different nodes compare equal.
        node_id, address, flags = parts[0], parts[1], frozenset(parts[2].split(",")) - {"myself"}
        port = int(address.split("@")[0].rsplit(":", 1)[1])
        slots = []
        for item in parts[8:]:
            if item.startswith("["):
                continue  # [slot->-id] / [slot-<-id]: a migration in progress, not ownership
            first, _, last = item.partition("-")
            slots.append((int(first), int(last or first)))
        role = "replica" if "slave" in flags else "master"
        master_id = parts[3] if parts[3] != "-" else None
        nodes.append(NodeInfo(node_id, port, None, role, tuple(sorted(slots)), master_id, flags))
    return nodes


class ClusterNode:
    """One `redis-server --cluster-enabled yes` process with its own port, bus port and directory."""

    def __init__(self, node_timeout_ms: int, extra_args: list[str] | None = None) -> None:
        self._new_ports()
        self.node_timeout_ms = node_timeout_ms
        self.extra_args = list(extra_args or [])
        self.dir = tempfile.mkdtemp(prefix="redis-cluster-test-")
        self.logfile = os.path.join(self.dir, "redis.log")
        self.process: ChildProcess | None = None
        self.node_id: str | None = None

    def _new_ports(self) -> None:
        self.port = free_port()
        self.bus_port = free_port()
        while self.bus_port == self.port:
            self.bus_port = free_port()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running else None

    def client(self, **kwargs) -> redis.Redis:
        """A plain (non-cluster) redis-py client for this node; close it when done."""
        kwargs.setdefault("socket_timeout", 2)
        kwargs.setdefault("socket_connect_timeout", 2)
        kwargs.setdefault("decode_responses", True)
        # No retries: redis-py 6 retries a refused connection with back-off for ~3 s, and the
        # readiness checks poll anyway (a dead node must fail at once).
        kwargs.setdefault("retry", Retry(NoBackoff(), 0))
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def call(self, *args, **kwargs):
        """Run one command on this node with a short-lived connection."""
        client = self.client(**kwargs)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def start(self) -> None:
        """Start (or start again, keeping nodes.conf: it rejoins with the same id) and wait for PING."""
        if self.running:
            return
        args = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            self.dir,
            "--logfile",
            self.logfile,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            str(self.bus_port),
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            *SERVER_ARGS,
            *self.extra_args,
        ]
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self.process = ChildProcess(args, label=f"redis-cluster-{self.port}", die_with_parent=True)
            if self._wait_ping(deadline):
                break
            output = self.process.output()
            self._reap()
            if self.node_id is None and "Failed listening" in self.log_tail():
                # Never started yet, so nothing knows its address: another test's process took a port
                # between free_port() and here. New ports (a restart must keep its own: it rejoins).
                self._new_ports()
                args[args.index("--port") + 1] = str(self.port)
                args[args.index("--cluster-port") + 1] = str(self.bus_port)
            # Right after a kill the port can stay busy for a moment: try again until the deadline.
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster node on port {self.port} did not start: {output}{self.log_tail()}")
            time.sleep(0.1)
        self.node_id = self.call("CLUSTER", "MYID")

    def _wait_ping(self, deadline: float) -> bool:
        assert self.process is not None
        while self.process.poll() is None:
            try:
                if self.call("PING"):
                    return True
            except (redis.ConnectionError, redis.TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.process.kill()
                return False
            time.sleep(0.02)
        return False

    def kill(self) -> float:
        """SIGKILL, like a crash; returns `time.monotonic()` just before the signal."""
        killed_at = time.monotonic()
        if self.process is not None:
            self.process.kill()
            self._reap()
        return killed_at

    def cleanup(self) -> None:
        """Kill the process (no state worth a graceful stop) and remove the directory."""
        try:
            self.kill()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def info(self, section: str) -> dict:
        return self.call("INFO", section)

    def cluster_info(self) -> dict[str, str]:
        text = self.call("CLUSTER", "INFO")
        return dict(line.split(":", 1) for line in text.strip().splitlines() if ":" in line)

    def cluster_nodes(self) -> list[NodeInfo]:
        return parse_cluster_nodes(self.call("CLUSTER", "NODES"))

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.logfile, encoding="utf8", errors="replace") as f:
                return f"\n--- redis log {self.port} ---\n" + "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def _reap(self) -> None:
        if self.process is not None:
            self.process.close()
        self.process = None

    def __repr__(self) -> str:
        return f"<ClusterNode 127.0.0.1:{self.port} {self.node_id} {'running' if self.running else 'stopped'}>"


class SlotMigration:
    """One slot moving between two masters step by step, so a test can stop half-way (ASK replies).

    `begin()` marks the slot IMPORTING on the target and MIGRATING on the
    source; from then on the source answers ASK for keys it no longer holds.
    `move_keys(keys)` MIGRATEs the given keys (or every key left);
    `finish()` assigns the slot to the target on every master (SETSLOT NODE).
    """

    def __init__(self, cluster: ClusterSetup, slot: int, source: ClusterNode, target: ClusterNode) -> None:
        self.cluster = cluster
        self.slot = slot
        self.source = source
        self.target = target
        self.moved: list[str] = []

    def begin(self) -> Self:
        # Target first: once the source says ASK, the target must already accept ASKING.
        self.target.call("CLUSTER", "SETSLOT", self.slot, "IMPORTING", self.source.node_id)
        self.source.call("CLUSTER", "SETSLOT", self.slot, "MIGRATING", self.target.node_id)
        return self

    def keys_left(self, count: int = 1000) -> list[str]:
        """Keys of the slot the source still holds."""
        return list(self.source.call("CLUSTER", "GETKEYSINSLOT", self.slot, count))

    def move_keys(self, keys: list[str] | None = None, batch: int = 100, replace: bool = False) -> int:
        """MIGRATE `keys` (all the slot's keys still on the source if None); returns how many moved.

        A key the target already holds fails with BUSYKEY (redis-cli's reshard stops there too);
        `replace=True` overwrites it instead (what `redis-cli --cluster fix` does), for clean-up."""
        moved = 0
        while True:
            todo = self.keys_left(batch) if keys is None else keys[moved : moved + batch]
            if not todo:
                return moved
            # MIGRATE host port "" 0 timeout KEYS k...: atomic per call; a key already gone is skipped (NOKEY).
            options = ["REPLACE"] if replace else []
            self.source.call("MIGRATE", "127.0.0.1", self.target.port, "", 0, 5000, *options, "KEYS", *todo)
            self.moved.extend(todo)
            moved += len(todo)
            if keys is not None and moved >= len(keys):
                return moved

    def finish(self) -> None:
        """Give the slot to the target: target first, then source, then the other masters (as the docs say)."""
        self.target.call("CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)
        self.source.call("CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)
        for node in self.cluster.nodes:
            if node.running and node not in (self.source, self.target) and node.node_id in self.cluster.master_ids():
                node.call("CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)

    def abort(self) -> None:
        """Back to the source (CLUSTER SETSLOT STABLE on both); keys already moved stay on the target."""
        self.source.call("CLUSTER", "SETSLOT", self.slot, "STABLE")
        self.target.call("CLUSTER", "SETSLOT", self.slot, "STABLE")


NodeRef = int | str | NodeInfo | ClusterNode


class ClusterSetup:
    """`with ClusterSetup(masters=3, replicas=1) as cluster:` a formed cluster, every node ok, replicas in sync."""

    def __init__(
        self,
        masters: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = NODE_TIMEOUT_MS,
        server_args: list[str] | None = None,
    ) -> None:
        """`server_args` go to every node's command line (e.g. `["--cluster-require-full-coverage", "no"]`)."""
        if masters < 1 or replicas < 0:
            raise ValueError("a cluster needs at least one master and a non-negative replica count")
        self.master_count = masters
        self.replica_count = replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes = [ClusterNode(node_timeout_ms, server_args) for _ in range(masters * (1 + replicas))]
        self.tools: list[ChildProcess] = []  # redis-cli processes (reshard) to stop at cleanup
        self._killed: list[tuple[ClusterNode, NodeInfo]] = []  # masters killed, with what they served

    # -- addresses ------------------------------------------------------------------------

    def startup_urls(self) -> list[str]:
        """`redis://127.0.0.1:PORT` for every node (startup nodes for redis-py or the layer)."""
        return [f"redis://127.0.0.1:{node.port}" for node in sorted(self.nodes, key=lambda n: n.port)]

    def url(self) -> str:
        """The `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,.../` URL naming every node."""
        return (
            "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in sorted(self.nodes, key=lambda n: n.port)) + "/"
        )

    def client(self, **kwargs) -> redis.cluster.RedisCluster:
        """redis-py's own cluster client on this cluster (close it when done)."""
        from redis.cluster import ClusterNode as PyClusterNode
        from redis.cluster import RedisCluster

        kwargs.setdefault("socket_timeout", 2)
        kwargs.setdefault("socket_connect_timeout", 2)
        return RedisCluster(startup_nodes=[PyClusterNode("127.0.0.1", n.port) for n in self.nodes], **kwargs)

    # -- start and stop -------------------------------------------------------------------

    def start(self) -> None:
        """Start every node, form the cluster and wait until it is ready (see `wait_ready`)."""
        self.start_nodes()
        self.form()

    def start_nodes(self) -> None:
        """Start the node processes only. A fresh master reports cluster_state:ok no sooner than 2 s
        after it started (Redis's CLUSTER_WRITABLE_DELAY), so a test that needs several clusters
        starts all their nodes first and then `form()`s each: the waits overlap."""
        for node in self.nodes:
            node.start()

    def form(self) -> None:
        """Join the started nodes into one cluster and wait until it is ready (see `wait_ready`)."""
        masters = self.nodes[: self.master_count]
        if self.master_count >= 3:
            self._create_with_cli()
        else:
            self._create_by_hand(masters, self.nodes[self.master_count :])
        self.wait_ready()

    def _create_with_cli(self) -> None:
        argv = [redis_cli(), "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes)]
        argv += ["--cluster-replicas", str(self.replica_count), "--cluster-yes"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False)
        if result.returncode != 0 or "[OK] All 16384 slots covered" not in result.stdout:
            raise RuntimeError(
                f"redis-cli --cluster create failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def _create_by_hand(self, masters: list[ClusterNode], replicas: list[ClusterNode]) -> None:
        # redis-cli refuses fewer than 3 masters; these are the commands it would send.
        for epoch, (node, (first, last)) in enumerate(zip(masters, slot_ranges(len(masters)), strict=True), 1):
            node.call("CLUSTER", "ADDSLOTSRANGE", first, last)
            node.call("CLUSTER", "SET-CONFIG-EPOCH", epoch)
        first_node = self.nodes[0]
        for node in self.nodes[1:]:
            node.call("CLUSTER", "MEET", "127.0.0.1", first_node.port, first_node.bus_port)
        self._wait(
            lambda: all(len(n.cluster_nodes()) == len(self.nodes) for n in self.nodes),
            "every node knows every other",
            READY_TIMEOUT,
        )
        for i, node in enumerate(replicas):
            node.call("CLUSTER", "REPLICATE", masters[i % len(masters)].node_id)

    def cleanup(self) -> None:
        """Stop the redis-cli processes and every node (SIGKILL, by PID) and remove their directories."""
        for tool in self.tools:
            tool.kill()
            tool.close()
        self.tools = []
        for node in self.nodes:
            node.cleanup()

    def pids(self) -> list[int]:
        """The PIDs of every process this set-up runs now (nodes and redis-cli)."""
        return [n.pid for n in self.nodes if n.pid] + [t.pid for t in self.tools if t.alive()]

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.cleanup()

    # -- topology -------------------------------------------------------------------------

    def live_nodes(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.running]

    def node(self, ref: NodeRef) -> ClusterNode:
        """The node for a master index (into `masters()`), a node id, a port, a `NodeInfo` or a node."""
        if isinstance(ref, ClusterNode):
            return ref
        if isinstance(ref, int) and not isinstance(ref, bool) and ref < len(self.nodes):
            return self.node(self.masters()[ref])
        for node in self.nodes:
            if (
                (isinstance(ref, NodeInfo) and node.node_id == ref.node_id)
                or (isinstance(ref, str) and node.node_id == ref)
                or (isinstance(ref, int) and node.port == ref)
            ):
                return node
        raise KeyError(f"no node {ref!r} in this cluster")

    def topology(self) -> list[NodeInfo]:
        """Every node as the first live node (by port) sees it, with the PIDs of live ones."""
        pids = {n.node_id: n.pid for n in self.nodes}
        for node in sorted(self.live_nodes(), key=lambda n: n.port):
            try:
                view = node.cluster_nodes()
            except (redis.ConnectionError, redis.TimeoutError):
                continue
            return [
                NodeInfo(i.node_id, i.port, pids.get(i.node_id), i.role, i.slots, i.master_id, i.flags) for i in view
            ]
        raise RuntimeError("no cluster node answers")

    def masters(self) -> list[NodeInfo]:
        """Live masters, ordered by the first slot they serve (a replica promoted in a failover takes its
        dead master's place in this order); masters serving no slot come last, by port."""
        found = [i for i in self.topology() if i.role == "master" and i.pid is not None]
        return sorted(found, key=lambda i: (i.slots[0][0] if i.slots else SLOTS, i.port))

    def replicas(self) -> list[NodeInfo]:
        """Live replicas, ordered by port; `master_id` names the master each one follows."""
        return sorted((i for i in self.topology() if i.role == "replica" and i.pid is not None), key=lambda i: i.port)

    def master_ids(self) -> set[str]:
        return {i.node_id for i in self.topology() if i.role == "master"}

    def master_for_slot(self, slot: int) -> NodeInfo:
        """The live master serving `slot` now."""
        for info in self.masters():
            if info.serves(slot):
                return info
        raise LookupError(f"no live master serves slot {slot}")

    @staticmethod
    def keyslot(key: str | bytes) -> int:
        """The hash slot of `key` (hash tags respected), as every Redis Cluster client computes it."""
        from redis.crc import key_slot

        return key_slot(key.encode() if isinstance(key, str) else key)

    # -- readiness ------------------------------------------------------------------------

    def _wait(self, ready, what: str, timeout: float) -> float:
        """Poll `ready()` until true; returns the `time.monotonic()` it became true; RuntimeError on timeout."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            try:
                if ready():
                    return time.monotonic()
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                tails = "".join(n.log_tail(8) for n in self.nodes)
                raise RuntimeError(f"cluster: not {what} within {timeout:g}s (last error: {last_error}){tails}")
            time.sleep(0.05)

    def _slot_map(self, node: ClusterNode) -> frozenset[tuple[str, tuple[tuple[int, int], ...]]]:
        return frozenset((i.node_id, i.slots) for i in node.cluster_nodes() if i.role == "master" and i.slots)

    def is_ready(self) -> bool:
        """Every live node: cluster_state ok, all 16384 slots ok, the same slot map, every other live node
        known and connected; every live replica's link to its master up and its sync done."""
        live = self.live_nodes()
        live_ids = {n.node_id for n in live}
        maps = set()
        for node in live:
            info = node.cluster_info()
            if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != SLOTS:
                return False
            view = {i.node_id: i for i in node.cluster_nodes()}
            for other in live_ids:
                if other not in view or {"fail", "fail?", "handshake", "noaddr"} & view[other].flags:
                    return False
            maps.add(self._slot_map(node))
            if view[node.node_id].role == "replica":
                replication = node.info("replication")
                if replication.get("master_link_status") != "up" or replication.get("master_sync_in_progress"):
                    return False
        return len(maps) == 1

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Wait until `is_ready()`; returns when it became true (`time.monotonic()`)."""
        return self._wait(self.is_ready, "ready (state ok, one slot map, replicas in sync)", timeout)

    # -- faults ---------------------------------------------------------------------------

    def kill_master(self, index: int = 0) -> float:
        """SIGKILL `masters()[index]`; returns `time.monotonic()` of the kill (for recovery times)."""
        info = self.masters()[index]
        node = self.node(info)
        self._killed.append((node, info))
        return node.kill()

    def wait_failover(self, timeout: float = FAILOVER_TIMEOUT) -> float:
        """Wait until another live master serves every slot of the last killed master in every live node's
        view and every live node says cluster_state:ok; returns when that was seen (`time.monotonic()`)."""
        if not self._killed:
            raise RuntimeError("wait_failover() without kill_master()")
        dead_node, dead = self._killed[-1]

        def taken_over() -> bool:
            for node in self.live_nodes():
                if node.cluster_info().get("cluster_state") != "ok":
                    return False
                view = node.cluster_nodes()
                owners = [i for i in view if i.role == "master" and i.node_id != dead.node_id]
                for first, last in dead.slots:
                    for slot in (first, last):
                        if not any(o.serves(slot) and o.node_id in self._live_ids() for o in owners):
                            return False
            return True

        return self._wait(taken_over, f"failed over from {dead_node!r}", timeout)

    def _live_ids(self) -> set[str]:
        return {n.node_id for n in self.live_nodes()}

    def restart(self, node: NodeRef) -> None:
        """Start a stopped node again with its nodes.conf: it rejoins (a master that was failed over
        comes back as a replica of the node that took its slots); waits until `is_ready()`."""
        target = self.node(node)
        target.start()
        self.wait_ready()

    def reshard(self, source: NodeRef, target: NodeRef, slots: int, pipeline: int = 10) -> ChildProcess:
        """Start `redis-cli --cluster reshard` moving `slots` slots from `source` to `target` and return it
        running (a `ChildProcess`: Popen's poll/wait/pid/returncode, plus `output()`), so a test can run
        traffic meanwhile. Wait for it with `.wait(timeout)`, then `wait_ready()` before reading `masters()`:
        other nodes, replicas above all, learn the new owners by gossip. `cleanup()` kills it if it still runs."""
        src, dst = self.node(source), self.node(target)
        argv = [
            redis_cli(),
            "--cluster",
            "reshard",
            f"127.0.0.1:{src.port}",
            "--cluster-from",
            src.node_id,
            "--cluster-to",
            dst.node_id,
            "--cluster-slots",
            str(slots),
            "--cluster-pipeline",
            str(pipeline),
            "--cluster-yes",
        ]
        tool = ChildProcess(argv, label="redis-cli-reshard", die_with_parent=True)
        self.tools.append(tool)
        return tool

    def migrate_slot(
        self, slot: int, source: NodeRef, target: NodeRef, keys: list[str] | None = None, finish: bool = True
    ) -> SlotMigration:
        """Move one slot step by step: SETSLOT IMPORTING/MIGRATING, MIGRATE of its keys, SETSLOT NODE.

        With `keys`, only those keys move; with `finish=False` the slot stays
        half-way (source MIGRATING, target IMPORTING), so clients get ASK for the
        moved keys. The returned `SlotMigration` continues it (`move_keys()`, `finish()`).
        """
        migration = SlotMigration(self, slot, self.node(source), self.node(target)).begin()
        migration.move_keys(keys)
        if finish:
            if keys is not None:
                migration.move_keys()
            migration.finish()
        return migration


_shared: ClusterSetup | None = None


def shared_setup() -> ClusterSetup:
    """One 3-master/3-replica cluster for the whole test run, for tests that neither kill nor reshard it;
    stopped at exit. Starting one takes a few seconds (the create, then the replicas' first sync)."""
    global _shared
    if _shared is None:
        setup = ClusterSetup(masters=3, replicas=1)
        try:
            setup.start()
        except BaseException:
            setup.cleanup()
            raise
        atexit.register(setup.cleanup)
        _shared = setup
    return _shared
