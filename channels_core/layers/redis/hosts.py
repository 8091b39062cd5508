"""Turns the `hosts` option into per-host connection settings for redis-py."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import redis

DEFAULT_URL = "redis://localhost:6379"


@dataclass
class HostConfig:
    """One Redis server: a printable label (no password) and how to connect to it."""

    label: str
    connection_class: type
    connection_kwargs: dict[str, Any]


def parse_hosts(hosts: Any, connection_kwargs: dict[str, Any] | None = None) -> list[HostConfig]:
    """Parse `hosts`: URLs (`redis://`, `rediss://`, `unix://`), `(host, port)` pairs or dicts.

    With no hosts, `$REDIS_URL` is used when set, else `redis://localhost:6379`.
    A dict may hold an `address` URL plus redis-py connection options.
    """
    extra = dict(connection_kwargs or {})
    if hosts is None:
        hosts = [os.environ.get("REDIS_URL") or DEFAULT_URL]
    elif isinstance(hosts, str):
        hosts = [hosts]
    if not isinstance(hosts, (list, tuple)) or not hosts:
        raise ValueError(f"hosts must be a non-empty list of Redis URLs or (host, port) pairs, not {hosts!r}")
    configs = [_parse_one(host, extra) for host in hosts]
    labels = [c.label for c in configs]
    for label in labels:
        if labels.count(label) > 1:
            raise ValueError(f"hosts lists the Redis server {label} twice")
    return configs


def _parse_one(host: Any, extra: dict[str, Any]) -> HostConfig:
    if isinstance(host, str):
        if "://" not in host:
            raise ValueError(f"Redis host {host!r} is not a URL: write 'redis://{host}' or a (host, port) pair")
        pool = redis.ConnectionPool.from_url(host, **extra)
    elif isinstance(host, (tuple, list)) and len(host) == 2:
        pool = redis.ConnectionPool(host=host[0], port=int(host[1]), **extra)
    elif isinstance(host, dict):
        options = {**extra, **host}
        address = options.pop("address", None)
        if isinstance(address, str):
            pool = redis.ConnectionPool.from_url(address, **options)
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
    return HostConfig(_label(pool.connection_class, kwargs), pool.connection_class, kwargs)


def _label(connection_class: type, kwargs: dict[str, Any]) -> str:
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    scheme = "rediss" if "SSL" in connection_class.__name__ else "redis"
    return f"{scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
