"""The Redis topologies the end-to-end checks run on, started by the tests and cleaned up after.

- `one`: the shared server (`$TEST_REDIS_URL`, default 127.0.0.1:6379 db 0);
- `two_shards`: client-side sharding over two private `redis-server`s, started
  for each user and stopped after it (private, so a test can see that the
  processes it started use them);
- `sentinel`: 1 master, 1 replica and 3 sentinels from
  `tests.support.redis_sentinel.shared_setup()`: one set-up for the whole run,
  shared with the layer conformance suite, stopped at exit;
- `cluster`: 3 masters and 3 replicas from
  `tests.support.redis_cluster.shared_setup()` (a `redis+cluster://` URL
  naming every node), likewise one for the whole run.

`with started(name) as topology:` gives a `Topology`; every user works under a
private key prefix and removes it with `topology.flush(prefix)` before the
block ends. The `topology` fixture does this for a test (parametrize it
indirectly with topology names).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import pytest
import redis

from channels_core.layers import RedisChannelLayer
from tests.support.redis_server import RedisServer

SHARED_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

TOPOLOGIES: tuple[str, ...] = ("one", "two_shards", "sentinel", "cluster")
"""Every topology, the plain one first."""
EXTRA_TOPOLOGIES: tuple[str, ...] = TOPOLOGIES[1:]


@dataclass
class Topology:
    """A running topology: the layer's `hosts` option for it and a client for each server a layer writes to."""

    name: str
    hosts: list[str]
    servers: list[str] = field(default_factory=list)
    """redis:// URLs of the servers holding the data (for Sentinel: the master now; for Cluster: the masters)."""

    @property
    def redis_url(self) -> str:
        """The topology as one `REDIS_URL` value: its URLs separated by spaces (client-side shards)."""
        return " ".join(self.hosts)

    def flush(self, prefix: str) -> None:
        """Delete every key under `prefix` on every server of the topology."""
        layer = RedisChannelLayer(hosts=self.hosts, prefix=prefix)
        try:
            layer.flush()
        finally:
            layer.close()

    def connections_received(self) -> list[int]:
        """How many connections each server has accepted since it started (this call's own included)."""
        return [_connections_received(url) for url in self.servers]

    def wait_for_connections(self, before: list[int], timeout: float = 10.0) -> None:
        """Until some server has accepted a connection since `before` (from `connections_received()`).

        Called after starting processes and before the test process uses the topology itself, it proves the
        processes reach the topology's servers: processes that ignored their settings would use the shared
        Redis instead. Some server, not every one: a process connects only to the shards its channels hash
        to, and with two shards all of them can land on one. (On `one`, the shared server, other users'
        connections count too, so it proves nothing there.)
        """
        deadline = time.monotonic() + timeout
        while True:
            # Each call opens one connection to each server: all but one of the growth since `before` is theirs.
            grown = [now - then - 1 for now, then in zip(self.connections_received(), before, strict=True)]
            if any(count > 0 for count in grown):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"on {self.name}, no process connected to {', '.join(self.servers)} within {timeout} s"
                )
            before = [then + 1 for then in before]  # this poll's own connections
            time.sleep(0.05)


def _connections_received(url: str) -> int:
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        return int(client.info("stats")["total_connections_received"])
    finally:
        client.close()


@contextmanager
def started(name: str) -> Iterator[Topology]:
    """Topology `name`, running for the block: its private servers are stopped and removed after it."""
    with ExitStack() as stack:
        if name == "one":
            yield Topology(name, [SHARED_URL], [SHARED_URL])
        elif name == "two_shards":
            servers = [stack.enter_context(RedisServer()) for _ in range(2)]
            urls = [server.url for server in servers]
            yield Topology(name, urls, urls)
        elif name == "sentinel":
            from tests.support.redis_sentinel import shared_setup

            setup = shared_setup()
            yield Topology(name, [setup.url()], [setup.master_server().url])
        elif name == "cluster":
            from tests.support.redis_cluster import shared_setup as shared_cluster

            cluster = shared_cluster()
            masters = [f"redis://127.0.0.1:{master.port}/0" for master in cluster.masters()]
            yield Topology(name, [cluster.url()], masters)
        else:
            raise ValueError(f"unknown topology {name!r}: one of {', '.join(TOPOLOGIES)}")


@pytest.fixture
def topology(request: pytest.FixtureRequest) -> Iterator[Topology]:
    """The running topology named by the indirect parameter; `one` when a test has none."""
    with started(getattr(request, "param", "one")) as running:
        yield running
