"""Turns the `hosts` option into per-host connection settings for redis-py.

A shard (`connection.Shard`) gets its connections from a `ConnectionSource`:
`HostConfig` is one fixed address; `sentinel.SentinelSource` (a `hosts` dict
with `sentinels`, or a `redis+sentinel://` URL) asks the sentinels where the
master is now on each new connection; a `redis+cluster://` URL (or a dict
with `cluster`) becomes `cluster.BUCKETS` sources, one per bucket of slots.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from . import cluster, sentinel
from .source_settings import KwargsSettings
from .url_parts import redact

DEFAULT_URL = "redis://localhost:6379"


class ConnectionSource(Protocol):
    """Where one shard's connections come from, wherever its master is."""

    label: str
    """Printable, without a password: `redis://host:6379/0`."""
    source: str
    """Which setting named it, for messages: `hosts[0]` or `$REDIS_URL`."""

    @property
    def address(self) -> str:
        """host:port, or the socket path, for messages."""
        ...

    @property
    def tls(self) -> bool:
        """True when connections are encrypted (`rediss://`)."""
        ...

    @property
    def db(self) -> int: ...

    @property
    def password_given(self) -> bool: ...

    def new_connection(self, **overrides: Any) -> Any:
        """A new, not yet connected redis-py `Connection` to the master; `overrides` replace settings (`db=0`)."""
        ...


@dataclass
class HostConfig(KwargsSettings):
    """One Redis server at a fixed address: a printable label (no password) and how to connect to it."""

    label: str
    connection_class: type
    connection_kwargs: dict[str, Any]
    source: str = "hosts"
    """Where the address came from, for messages: `hosts[0]` or `$REDIS_URL`."""

    @property
    def address(self) -> str:
        kwargs = self.connection_kwargs
        return kwargs["path"] if "path" in kwargs else f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"

    @property
    def tls(self) -> bool:
        return _is_tls(self.connection_class)

    def new_connection(self, **overrides: Any) -> Any:
        return self.connection_class(**{**self.connection_kwargs, **overrides})


def parse_hosts(hosts: Any, connection_kwargs: dict[str, Any] | None = None) -> list[ConnectionSource]:
    """Parse `hosts`: URLs (`redis://`, `rediss://`, `unix://`, `redis+sentinel://`, `redis+cluster://`) or pairs.

    With no hosts, `$REDIS_URL` is used when set, else `redis://localhost:6379`.
    A dict may hold an `address` URL plus redis-py connection options,
    `sentinels` and `master_name` (Redis Sentinel) plus the master's options,
    or `cluster` (Redis Cluster startup nodes) plus the nodes' options.
    """
    extra = dict(connection_kwargs or {})
    sources: list[str] | None = None
    if hosts is None:
        from_env = os.environ.get("REDIS_URL")
        hosts = [from_env or DEFAULT_URL]
        sources = ["$REDIS_URL" if from_env else "the default"]
    elif isinstance(hosts, str):
        hosts = [hosts]
    if not isinstance(hosts, (list, tuple)) or not hosts:
        raise ValueError(f"hosts must be a non-empty list of Redis URLs or (host, port) pairs, not {hosts!r}")
    configs = [_parse_one(host, extra, sources[i] if sources else f"hosts[{i}]") for i, host in enumerate(hosts)]
    clusters = [c for c in configs if isinstance(c, cluster.ClusterMap)]
    if clusters:
        if len(configs) > 1:
            raise ValueError(
                f"{clusters[0].source} is a Redis Cluster: list its nodes in one redis+cluster:// URL "
                "(or one {'cluster': [...]} dict) and no other hosts"
            )
        return clusters[0].buckets()  # type: ignore[return-value]
    labels = [c.label for c in configs]
    for label in labels:
        if labels.count(label) > 1:
            raise ValueError(f"hosts lists the Redis server {label} twice")
    ring_names = [ring_name(c) for c in configs]
    for config in configs:
        if ring_names.count(ring_name(config)) > 1:
            # Two Sentinel sets each with a master of the same name: tell them apart by their sentinels.
            config.ring_name = config.label  # type: ignore[union-attr]
    return configs


def ring_name(host: ConnectionSource) -> str:
    """The name a shard has on the hash ring: its label, or for Sentinel its master's name and db."""
    return getattr(host, "ring_name", None) or host.label


def _parse_one(host: Any, extra: dict[str, Any], source: str) -> ConnectionSource | cluster.ClusterMap:
    if isinstance(host, str) and cluster.is_cluster_url(host):
        return cluster.from_url(host, extra, source)
    if isinstance(host, dict) and "cluster" in host:
        return cluster.from_dict({**extra, **host}, source)
    if isinstance(host, str) and sentinel.is_sentinel_url(host):
        return sentinel.from_url(host, extra, source)
    if isinstance(host, dict) and "sentinels" in host:
        return sentinel.from_dict({**extra, **host}, source)
    if isinstance(host, str):
        pool = _pool_from_url(host, extra, source)
    elif isinstance(host, (tuple, list)) and len(host) == 2:
        pool = redis.ConnectionPool(host=host[0], port=int(host[1]), **extra)
    elif isinstance(host, dict):
        options = {**extra, **host}
        address = options.pop("address", None)
        if isinstance(address, str):
            pool = _pool_from_url(address, options, f"{source}['address']")
        elif isinstance(address, (tuple, list)) and len(address) == 2:
            pool = redis.ConnectionPool(host=address[0], port=int(address[1]), **options)
        else:
            pool = redis.ConnectionPool(**options)
    else:
        raise ValueError(f"Redis host {host!r} must be a URL, a (host, port) pair or a dict")
    kwargs = dict(pool.connection_kwargs)
    kwargs["decode_responses"] = False
    kwargs.setdefault("socket_connect_timeout", 5)
    if kwargs.get("socket_timeout") is None:
        kwargs["socket_timeout"] = 10
    return HostConfig(_label(pool.connection_class, kwargs), pool.connection_class, kwargs, source)


# A scheme with its colon or slashes mistyped: "redis//h", "redis:/h", "rediss//h", "redis:h:6379".
_MISTYPED_SCHEME = re.compile(r"(?i)(rediss?|unix)(:/?|/{1,2})(?=[^/])")
# host, host:port, host:port/db, with an optional user:password@ (the host is required).
_BARE_ADDRESS = re.compile(r"([^/@]*@)?[^/:@]+(:\d+)?(/\d+)?")


def _pool_from_url(url: str, extra: dict[str, Any], source: str) -> redis.ConnectionPool:
    what = f"{source} {redact(url)!r}"
    if "://" not in url:
        suggestion = _suggest_url(url)
        write = f"write {suggestion!r}" if suggestion else "write a URL such as 'redis://host:6379/0'"
        if source.startswith("hosts"):
            write += " or a (host, port) pair"
        raise ValueError(f"{what} is not a URL: {write}")
    try:
        pool = redis.ConnectionPool.from_url(url, **extra)
    except ValueError as exc:
        raise ValueError(f"{what} is not a usable Redis URL: {exc}") from None
    kwargs = pool.connection_kwargs
    if issubclass(pool.connection_class, redis.UnixDomainSocketConnection):
        if not kwargs.get("path"):
            raise ValueError(f"{what} names no socket path: write e.g. 'unix:///run/redis/redis.sock'")
    elif not kwargs.get("host"):
        # redis-py would quietly use localhost: most often an empty variable in the URL ("redis://$HOST:6379").
        raise ValueError(
            f"{what} names no host (is a variable in it empty?): write one, e.g. 'redis://localhost:6379/0'"
        )
    return pool


def _suggest_url(text: str) -> str | None:
    """The URL `text` (which has no "://") most likely meant, or None."""
    match = _MISTYPED_SCHEME.match(text)
    rest = text[match.end() :] if match else text
    if match and not (match.group(2) == ":" and rest.split("/")[0].isdigit()):  # "redis:6379": the host "redis"
        scheme = match.group(1).lower()
        if scheme == "unix":
            return "unix:///" + rest.lstrip("/")
        return f"{scheme}://{redact(rest)}"
    if _BARE_ADDRESS.fullmatch(text):
        return f"redis://{redact(text)}"
    return None


def _label(connection_class: type, kwargs: dict[str, Any]) -> str:
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    scheme = "rediss" if _is_tls(connection_class) else "redis"
    return f"{scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def _is_tls(connection_class: type) -> bool:
    return "SSL" in connection_class.__name__
