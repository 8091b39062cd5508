"""A throw-away Redis Sentinel set-up for tests: 1 master, 1 replica, 3 sentinels.

Everything runs from the `redis-server` binary (`--sentinel` makes it a
sentinel, no separate package needed) on free 127.0.0.1 ports, with a low
`down-after-milliseconds` so a failover takes about two seconds; `cleanup()`
stops every process it started (by its own PID) and removes their directories.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from typing import Self

import redis

from channels_core.test.processes import ChildProcess, free_port
from tests.support.redis_server import RedisServer

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
READY_TIMEOUT = 30.0
# A master waits repl-diskless-sync-delay (5 s by default) for more replicas before a full sync:
# until then the replica holds nothing, and a failover would lose everything.
SERVER_ARGS = ["--repl-diskless-sync-delay", "0"]


def _flags(state: dict) -> set[str]:
    """An instance's flags, which redis-py gives as a set (or a comma-separated str)."""
    flags = state.get("flags", ())
    return set(flags.split(",")) if isinstance(flags, str) else set(flags)


class SentinelProcess:
    """One `redis-server --sentinel` process monitoring `MASTER_NAME` at `master_port`."""

    def __init__(self, master_port: int, quorum: int = 2) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-sentinel-test-")
        self.config = os.path.join(self.dir, "sentinel.conf")
        with open(self.config, "w") as f:
            # Sentinel rewrites this file as it learns about replicas and its peers.
            f.write(
                f"port {self.port}\n"
                "bind 127.0.0.1\n"
                f"dir {self.dir}\n"
                f"logfile {os.path.join(self.dir, 'sentinel.log')}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {quorum}\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
        self.process: ChildProcess | None = ChildProcess(
            ["redis-server", self.config, "--sentinel"], label=f"redis-sentinel-{self.port}", die_with_parent=True
        )

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def healthy_replicas(self) -> int:
        """How many replicas this sentinel sees up with their link to the master up (promotable)."""
        client = self.client()
        try:
            replicas = client.sentinel_slaves(MASTER_NAME)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return 0
        finally:
            client.close()
        return sum(
            1
            for r in replicas
            if not ({"s_down", "o_down", "disconnected"} & _flags(r)) and r.get("master-link-status") == "ok"
        )

    def master_state(self) -> dict | None:
        """What this sentinel knows of the master, or None if it does not answer yet."""
        client = self.client()
        try:
            return client.sentinel_master(MASTER_NAME)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return None
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(5)
            self.process.close()
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelSetup:
    """`with SentinelSetup() as s:` a master, a replica of it and three sentinels, ready to fail over."""

    def __init__(self) -> None:
        self.master = RedisServer(extra_args=SERVER_ARGS)
        self.replica: RedisServer | None = None
        self.sentinels: list[SentinelProcess] = []

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return sorted(("127.0.0.1", s.port) for s in self.sentinels)

    def url(self, db: int = 0) -> str:
        """The `redis+sentinel://` URL of this set-up."""
        hosts = ",".join(f"{h}:{p}" for h, p in self.sentinel_addresses)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/{db}"

    def start(self) -> None:
        self.master.start()
        self.replica = RedisServer(extra_args=[*SERVER_ARGS, "--replicaof", "127.0.0.1", str(self.master.port)])
        self.replica.start()
        self.sentinels = [SentinelProcess(self.master.port) for _ in range(3)]
        self.wait_until_ready()

    def wait_until_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until every sentinel agrees on one master that has a replica in sync and knows the two other sentinels."""
        deadline = time.monotonic() + timeout
        while not self.replica_in_sync():
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica in sync with the master within {timeout}s")
            time.sleep(0.05)
        while True:
            states = [s.master_state() for s in self.sentinels]
            if (
                all(
                    state
                    and int(state.get("num-other-sentinels", 0)) >= len(self.sentinels) - 1
                    and int(state.get("num-slaves", 0)) >= 1
                    and not ({"s_down", "o_down"} & _flags(state))
                    and sentinel.healthy_replicas() >= 1
                    for state, sentinel in zip(states, self.sentinels, strict=True)
                )
                and len({(st["ip"], st["port"]) for st in states}) == 1
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the sentinels did not agree on a master with a replica within {timeout}s: {states}"
                )
            time.sleep(0.1)

    def replica_in_sync(self) -> bool:
        """True if a server other than the master is its replica with the link up."""
        try:
            master_port = self.current_master_port() if self.sentinels else self.master.port
        except RuntimeError:
            return False
        for server in (self.master, self.replica):
            if server is None or server.port == master_port or not server.running:
                continue
            client = server.client()
            try:
                info = client.info("replication")
            except (redis.ConnectionError, redis.TimeoutError):
                continue
            finally:
                client.close()
            if info.get("master_port") == master_port and info.get("master_link_status") == "up":
                return True
        return False

    def current_master_port(self) -> int:
        """The master's port as the first sentinel that answers reports it."""
        for sentinel in self.sentinels:
            state = sentinel.master_state()
            if state:
                return int(state["port"])
        raise RuntimeError("no sentinel answers")

    def master_server(self) -> RedisServer:
        """The `RedisServer` that is the master now."""
        port = self.current_master_port()
        for server in (self.master, self.replica):
            if server is not None and server.port == port:
                return server
        raise RuntimeError(f"the sentinels name port {port}, which is none of ours")

    def cleanup(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.sentinels = []
        for server in (self.master, self.replica):
            if server is not None:
                server.cleanup()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.cleanup()


_shared: SentinelSetup | None = None


def shared_setup() -> SentinelSetup:
    """One set-up for the whole test run, for tests that do not fail it over; stopped at exit.

    Starting one takes a few seconds (the sentinels find each other through
    hello messages sent every 2 s), so read-only users share it.
    """
    global _shared
    if _shared is None:
        setup = SentinelSetup()
        try:
            setup.start()
        except BaseException:
            setup.cleanup()
            raise
        atexit.register(setup.cleanup)
        _shared = setup
    return _shared
