"""`RedisSentinelChannelLayer`: asgi_redis 1.x's Sentinel layer, so 1.x settings port unchanged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..capacity import Rule
from .layer import RedisChannelLayer

DEFAULT_SENTINELS = [("localhost", 26379)]


class RedisSentinelChannelLayer(RedisChannelLayer):
    """The Redis layer on masters found through one set of Redis Sentinels.

    `hosts` are the sentinels' `(host, port)` pairs (default
    `[("localhost", 26379)]`); each name in `services` is a master the
    sentinels monitor and becomes one shard. `connection_kwargs` apply to
    the masters (db, password, socket_timeout...); `sentinel_kwargs` to the
    sentinels. `sentinel_refresh_interval` (seconds, 0 = ask on every new
    connection) is how long a discovered master address is reused.
    The other options are `RedisChannelLayer`'s, in asgi_redis 1.x's order.

    The same as `RedisChannelLayer(hosts=[{"sentinels": hosts, "master_name":
    name, ...} for name in services])`.
    """

    def __init__(
        self,
        expiry: float = 60,
        hosts: Sequence[Any] | None = None,
        prefix: str = "asgi:",
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Rule, int] | None = None,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        stats_prefix: str | None = None,
        connection_kwargs: dict[str, Any] | None = None,
        services: Sequence[str] | None = None,
        sentinel_refresh_interval: float = 0,
        sentinel_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if isinstance(services, str):
            services = [services]
        if not services:
            raise ValueError(
                "RedisSentinelChannelLayer needs services: the master names your sentinels monitor, e.g. ['mymaster']"
            )
        sentinels = list(hosts or DEFAULT_SENTINELS)
        shard_hosts = [
            {
                **(connection_kwargs or {}),
                "sentinels": sentinels,
                "master_name": name,
                "sentinel_kwargs": sentinel_kwargs,
                "sentinel_refresh_interval": sentinel_refresh_interval,
            }
            for name in services
        ]
        super().__init__(
            expiry,
            shard_hosts,
            prefix,
            group_expiry,
            capacity,
            channel_capacity,
            symmetric_encryption_keys,
            stats_prefix,
            None,
            **options,
        )
        self.services = list(services)
