"""The Redis Cluster test set-up (`tests/support/redis_cluster.py`) checked with redis-py's own cluster client.

Before any layer runs on it: the cluster serves keys on every master, a
SIGKILLed master's replica takes over within a few seconds, the old master
rejoins as a replica, `redis-cli --cluster reshard` and a step-by-step slot
migration move slots (ASK half-way, MOVED after), the 1, 2 and 4 master
shapes the benchmarks use form, and nothing is left running afterwards.
"""

from __future__ import annotations

import os
import time

import pytest
import redis
from redis.exceptions import AskError

from channels_core.test.processes import alive
from tests.support.redis_cluster import SLOTS, ClusterSetup, NodeInfo, shared_setup
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

# Redis promotes a replica about node-timeout (1 s here) + 0.5-1 s election delay after a kill;
# the bound leaves room for a busy 2-core CI machine.
FAILOVER_BOUND = 10.0


def key_on(master: NodeInfo, prefix: str) -> str:
    """A key (`prefix` + a number) whose slot `master` serves."""
    for i in range(100_000):
        key = f"{prefix}{i}"
        if master.serves(ClusterSetup.keyslot(key)):
            return key
    raise AssertionError(f"no key found for {master}")


def covered(masters: list[NodeInfo]) -> int:
    return sum(m.slot_count for m in masters)


def test_shared_cluster_serves_keys_on_every_master():
    cluster = shared_setup()
    masters, replicas = cluster.masters(), cluster.replicas()
    assert len(masters) == 3 and covered(masters) == SLOTS
    assert sorted(r.master_id for r in replicas) == sorted(m.node_id for m in masters)
    ports = sorted(n.port for n in masters + replicas)
    assert cluster.startup_urls() == [f"redis://127.0.0.1:{p}" for p in ports]
    assert cluster.url() == "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports) + "/"
    assert all(alive(n.pid) for n in masters + replicas)

    client = cluster.client(decode_responses=True)
    keys = [f"setup-test:{i}" for i in range(300)]
    try:
        for key in keys:
            client.set(key, key.upper())
        assert [client.get(k) for k in keys] == [k.upper() for k in keys]
        # Each master holds exactly the keys of its slots.
        for master in masters:
            on_master = {k for k in keys if master.serves(cluster.keyslot(k))}
            assert on_master, "300 keys should reach every master"
            assert cluster.node(master).call("DBSIZE") == len(on_master)
    finally:
        client.delete(*keys)
        client.close()


def test_failover_rejoin_reshard_and_slot_migration_then_nothing_left():
    with ClusterSetup(masters=3, replicas=1) as cluster:
        client = cluster.client(decode_responses=True)
        try:
            # -- failover: the dead master's replica takes its slots -----------------------------
            victim = cluster.masters()[0]
            replica = next(r for r in cluster.replicas() if r.master_id == victim.node_id)
            key = key_on(victim, "failover:")
            direct = cluster.node(victim).client()
            direct.set(key, "kept")
            assert direct.execute_command("WAIT", 1, 2000) == 1  # on the replica before the kill
            direct.close()

            killed_at = cluster.kill_master(0)
            assert not alive(victim.pid)
            recovered = cluster.wait_failover() - killed_at
            print(f"\ncluster failover: {recovered:.2f}s from SIGKILL to a promoted replica and state ok")
            assert recovered < FAILOVER_BOUND
            promoted = cluster.masters()[0]
            assert promoted.node_id == replica.node_id and promoted.slots == victim.slots
            assert client.get(key) == "kept"

            # -- the old master comes back as a replica of the promoted one -----------------------
            cluster.restart(victim)
            # It rejoins as a master whose slots are gone and turns replica once told: wait for that turn.
            assert wait_for(lambda: any(r.node_id == victim.node_id for r in cluster.replicas()), 30, 0.1)
            back = next(r for r in cluster.replicas() if r.node_id == victim.node_id)
            assert back.master_id == promoted.node_id

            # -- redis-cli --cluster reshard moves slots with their keys --------------------------
            keys = [f"reshard:{i}" for i in range(2000)]
            for k in keys:
                client.set(k, k)
            before = cluster.masters()
            tool = cluster.reshard(1, 2, 500)
            assert tool.wait(60) == 0, tool.output()
            cluster.wait_ready()  # replicas learn the new owners by gossip
            after = {m.node_id: m.slot_count for m in cluster.masters()}
            assert after[before[1].node_id] == before[1].slot_count - 500
            assert after[before[2].node_id] == before[2].slot_count + 500
            assert [client.get(k) for k in keys] == keys

            # -- step-by-step migration: ASK half-way, MOVED after --------------------------------
            source = cluster.masters()[1]
            target = cluster.masters()[2]
            slot, tag = next(
                (s, t) for t in (f"mig{i}" for i in range(100_000)) if source.serves(s := cluster.keyslot(t))
            )
            slot_keys = [f"{{{tag}}}:{i}" for i in range(4)]
            for k in slot_keys:
                client.set(k, k)
            migration = cluster.migrate_slot(slot, source, target, keys=slot_keys[:2], finish=False)
            raw = cluster.node(source).client()
            with pytest.raises(AskError) as ask:
                raw.get(slot_keys[0])  # moved: the source sends the client to the target
            assert ask.value.node_addr == ("127.0.0.1", target.port)
            assert raw.get(slot_keys[2]) == slot_keys[2]  # not moved yet: the source still answers
            raw.close()
            assert [client.get(k) for k in slot_keys] == slot_keys  # redis-py follows ASK
            migration.move_keys()
            migration.finish()
            assert cluster.master_for_slot(slot).node_id == target.node_id
            assert [client.get(k) for k in slot_keys] == slot_keys  # and MOVED
            cluster.wait_ready()
        finally:
            client.close()
        pids = cluster.pids()
        dirs = [n.dir for n in cluster.nodes]
        assert len(pids) == 6
    # Everything this set-up started is gone: no process, no directory.
    assert [pid for pid in pids if alive(pid)] == []
    assert [d for d in dirs if os.path.exists(d)] == []


def test_benchmark_shapes_without_replicas():
    started = time.monotonic()
    clusters = [ClusterSetup(masters=n, replicas=0) for n in (1, 2, 4)]
    try:
        for cluster in clusters:
            cluster.start_nodes()  # all first: each master's 2 s start-up delay overlaps the others'
        for cluster in clusters:
            cluster.form()
            found = cluster.masters()
            assert len(found) == cluster.master_count and cluster.replicas() == []
            assert covered(found) == SLOTS
            assert max(m.slot_count for m in found) - min(m.slot_count for m in found) <= 1
            client = cluster.client()
            try:
                for i in range(100):
                    client.set(f"shape:{i}", i)
                assert [int(client.get(f"shape:{i}")) for i in range(100)] == list(range(100))
            finally:
                client.close()
        pids = [pid for cluster in clusters for pid in cluster.pids()]
        assert len(pids) == 1 + 2 + 4
    finally:
        for cluster in clusters:
            cluster.cleanup()
    assert [pid for pid in pids if alive(pid)] == []
    print(f"\n1, 2 and 4-master clusters: ready and stopped in {time.monotonic() - started:.2f}s")


def test_a_stopped_node_fails_the_ready_check():
    # The readiness check can fail: with a master gone and no replica, slots are uncovered.
    with ClusterSetup(masters=3, replicas=0, node_timeout_ms=500) as cluster:
        assert cluster.is_ready()
        victim = cluster.node(2)
        cluster.kill_master(2)
        with pytest.raises(redis.ConnectionError):
            victim.call("PING")
        with pytest.raises(RuntimeError, match="failed over"):
            cluster.wait_failover(timeout=2)
        assert not cluster.is_ready()
