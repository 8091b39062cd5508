"""Choosing a channel layer with one URL: `redis://`, `amqp://` or `ipc://`, as `$CHANNEL_LAYER_URL` holds it.

    CHANNEL_LAYERS = {"default": settings_from_url(os.environ["CHANNEL_LAYER_URL"], routing="app.routing.routes")}
    layer = from_url("ipc://myapp", capacity=500)  # outside Django

The URL says which layer and where it is; the layer's other options
(`prefix`, `expiry`, `capacity`, ...) are keyword arguments, so one
environment variable moves an app between Redis, RabbitMQ and one machine's
IPC without another setting changing:

- `redis://`, `rediss://`, `unix://`, `redis+sentinel://`, `redis+cluster://`
  (and their `rediss+` forms): `RedisChannelLayer` with `hosts=[url]`; several
  URLs separated by spaces are client-side shards, as `$REDIS_URL` allows;
- `amqp://`, `amqps://`: `RabbitMQChannelLayer` with `url=url`;
- `ipc://PREFIX` (or `ipc:///PREFIX`): `IPCChannelLayer` with `prefix=PREFIX`;
  `ipc://` or `ipc:///` alone keeps the layer's (or the caller's) prefix.

`settings_from_url` names the backend by its dotted path and imports no
layer; `from_url` imports the one it builds (pika only for `amqp://`), so a
settings module can use either on a machine without pika.
"""

from __future__ import annotations

import importlib
import re
from typing import Any
from urllib.parse import urlsplit

from .base import BaseChannelLayer

REDIS_SCHEMES = frozenset(
    {"redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"}
)
AMQP_SCHEMES = frozenset({"amqp", "amqps"})
IPC_SCHEMES = frozenset({"ipc"})

BACKENDS = {
    "redis": "channels_core.layers.RedisChannelLayer",
    "amqp": "channels_core.layers.RabbitMQChannelLayer",  # imports pika only when the backend is built
    "ipc": "channels_core.layers.IPCChannelLayer",
}

# The IPC layer's prefix names files in /dev/shm (kept in step with `ipc.cleanup.PREFIX_RE`).
_IPC_PREFIX = re.compile(r"[A-Za-z0-9_\-]{1,64}")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def _scheme(url: str) -> str:
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else ""


def _unknown(url: str) -> ValueError:
    shown = re.sub(r"(?<=:)[^:/@]+(?=@)", "***", url)  # the message may be logged: no password in it
    return ValueError(
        f"channel layer URL {shown!r}: unknown scheme; use redis:// (rediss://, unix://, redis+sentinel://, "
        "redis+cluster://) for Redis, amqp:// or amqps:// for RabbitMQ, or ipc://PREFIX for one machine's IPC layer"
    )


def _ipc_prefix(url: str) -> str | None:
    """The prefix of `ipc://PREFIX` or `ipc:///PREFIX`; None for `ipc://` and `ipc:///`."""
    parts = urlsplit(url)
    if parts.query or parts.fragment or parts.port is not None or "@" in parts.netloc:
        raise ValueError(f"channel layer URL {url!r}: write ipc://PREFIX (no user, port, query or fragment)")
    netloc, path = parts.netloc, parts.path.strip("/")
    if netloc and path:
        raise ValueError(f"channel layer URL {url!r}: write ipc://PREFIX or ipc:///PREFIX, one name only")
    prefix = netloc or path
    if not prefix:
        return None
    if not _IPC_PREFIX.fullmatch(prefix):
        raise ValueError(
            f"channel layer URL {url!r}: the IPC prefix names files in /dev/shm: 1 to 64 of A-Z a-z 0-9 _ -"
        )
    return prefix


def kind_of(url: str) -> str:
    """Which layer `url` selects: "redis", "amqp" or "ipc"; ValueError for any other scheme.

    Several Redis URLs separated by whitespace (client-side shards) are one Redis URL here.
    """
    urls = url.split()
    if not urls:
        raise ValueError("channel layer URL is empty: use redis://..., amqp://... or ipc://PREFIX")
    schemes = {_scheme(each) for each in urls}
    if schemes <= REDIS_SCHEMES:
        return "redis"
    if len(urls) > 1:
        raise ValueError(
            f"channel layer URL {url!r}: several URLs separated by spaces are Redis shards only (redis://...)"
        )
    if schemes <= AMQP_SCHEMES:
        return "amqp"
    if schemes <= IPC_SCHEMES:
        return "ipc"
    raise _unknown(url)


def config_from_url(url: str, **options: Any) -> tuple[str, dict[str, Any]]:
    """The backend's dotted path and its `CONFIG` (the layer's keyword arguments) for `url` and `options`.

    For `ipc://PREFIX` the URL's prefix wins over a `prefix` option (the URL
    is the more specific setting: it is where the layer lives); a URL's
    Redis hosts or AMQP address likewise win over `hosts` or `url` options.
    """
    kind = kind_of(url)
    config = dict(options)
    if kind == "redis":
        config["hosts"] = url.split()
    elif kind == "amqp":
        config["url"] = url.strip()
    else:
        prefix = _ipc_prefix(url.strip())
        if prefix is not None:
            config["prefix"] = prefix
    return BACKENDS[kind], config


def settings_from_url(url: str, routing: str | None = None, **options: Any) -> dict[str, Any]:
    """A `CHANNEL_LAYERS` entry for `url`: `{"BACKEND": ..., "CONFIG": {...}}`, plus `"ROUTING"` when given.

    `options` are the layer's other settings (`prefix`, `capacity`, ...).
    Raises ValueError, naming the schemes it knows, for any other URL.
    """
    backend, config = config_from_url(url, **options)
    entry: dict[str, Any] = {"BACKEND": backend, "CONFIG": config}
    if routing is not None:
        entry["ROUTING"] = routing
    return entry


def from_url(url: str, **options: Any) -> BaseChannelLayer:
    """The channel layer `url` selects, built with `options` (imports only that layer's client library)."""
    backend, config = config_from_url(url, **options)
    module, _, name = backend.rpartition(".")
    return getattr(importlib.import_module(module), name)(**config)
