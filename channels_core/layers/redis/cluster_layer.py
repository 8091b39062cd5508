"""`RedisClusterChannelLayer`: the Redis layer on a Redis Cluster, given its startup nodes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..capacity import Rule
from .layer import RedisChannelLayer

DEFAULT_NODES = ["redis://localhost:6379"]


class RedisClusterChannelLayer(RedisChannelLayer):
    """The Redis layer on one Redis Cluster.

    `hosts` are startup nodes: `redis://host:port` URLs (`rediss://` for
    TLS, a password in the URL) or `(host, port)` pairs; any one that
    answers is enough, the rest of the cluster is discovered. A single
    `redis+cluster://h1:7000,h2:7001` URL works too. `connection_kwargs`
    apply to every node. The other options are `RedisChannelLayer`'s.

    The same as `RedisChannelLayer(hosts=[{"cluster": hosts, **connection_kwargs}])`;
    see `cluster` for how channels map onto slots and what changes on a cluster.
    """

    def __init__(
        self,
        expiry: float = 60,
        hosts: Sequence[Any] | str | None = None,
        prefix: str = "asgi:",
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Rule, int] | None = None,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        stats_prefix: str | None = None,
        connection_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if isinstance(hosts, str):
            hosts = [hosts]
        nodes = list(hosts or DEFAULT_NODES)
        if len(nodes) == 1 and isinstance(nodes[0], str) and "+cluster://" in nodes[0]:
            cluster_hosts: list[Any] = nodes
        else:
            cluster_hosts = [{**(connection_kwargs or {}), "cluster": nodes}]
            connection_kwargs = None
        super().__init__(
            expiry,
            cluster_hosts,
            prefix,
            group_expiry,
            capacity,
            channel_capacity,
            symmetric_encryption_keys,
            stats_prefix,
            connection_kwargs,
            **options,
        )
