"""Redis Sentinel: a shard whose master is wherever the sentinels say it is now.

`SentinelSource` is a `hosts.ConnectionSource`: each new connection asks
the sentinels for the master's current address when it connects, so a
shard follows a failover as soon as its connections are re-made (a killed
master breaks them; a demoted one answers READONLY, which breaks them here).
The `Shard` pool, reconnects, health and handshake stay as they are.

Three spellings reach it (all parse to the same source):

- a `hosts` dict: `{"sentinels": [("h", 26379), ...], "master_name": "mymaster",
  "sentinel_kwargs": {...}, **master connection options}` (channels_redis 4);
- a URL: `redis+sentinel://[[user]:password@]h1:26379,h2:26379/mymaster[/db][?sentinel_password=...]`
  (the spelling of the `redis-sentinel-url` package and Flask-Redis-Sentinel);
- `RedisSentinelChannelLayer(hosts=[sentinels], services=[names])` (asgi_redis 1.x).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.exceptions as rexc
from redis.sentinel import MasterNotFoundError, Sentinel

from ..errors import LayerConfigurationError
from .source_settings import KwargsSettings
from .url_parts import host_list, redact

URL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_SENTINEL_PORT = 26379
# Sentinel answers in microseconds when up; a dead one must not stall a reconnect for long.
_SENTINEL_TIMEOUT = 1.0
# redis-py connection options that make no sense for a master found through Sentinel.
_ADDRESS_KEYS = ("host", "port", "path", "address")


class SentinelSource(KwargsSettings):
    """Connections to the current master of `master_name`, as the `sentinels` report it.

    `refresh_interval` (seconds, asgi_redis's `sentinel_refresh_interval`):
    how long a discovered address is reused before asking again; 0 (the
    default) asks on every new connection. A failed connect or a READONLY
    reply forgets the cached address at once.
    """

    def __init__(
        self,
        sentinels: list[tuple[str, int]],
        master_name: str,
        connection_kwargs: dict[str, Any],
        sentinel_kwargs: dict[str, Any] | None = None,
        refresh_interval: float = 0,
        source: str = "hosts",
        tls: bool = False,
    ) -> None:
        if not sentinels:
            raise ValueError(f"{source} lists no sentinels: give (host, port) pairs of your Redis Sentinels")
        if not isinstance(master_name, str) or not master_name:
            raise ValueError(f"{source} needs a master_name (the name the sentinels monitor), not {master_name!r}")
        self.sentinel_addresses = [_address(s, source) for s in sentinels]
        self.master_name = master_name
        self.source = source
        self.refresh_interval = float(refresh_interval)
        kwargs = {k: v for k, v in connection_kwargs.items() if k not in _ADDRESS_KEYS}
        kwargs["decode_responses"] = False
        kwargs.setdefault("socket_connect_timeout", 5)
        if kwargs.get("socket_timeout") is None:
            kwargs["socket_timeout"] = 10
        self.connection_kwargs = kwargs
        self._tls = tls or bool(kwargs.pop("ssl", False))
        options = {"socket_timeout": _SENTINEL_TIMEOUT, "socket_connect_timeout": _SENTINEL_TIMEOUT}
        options.update(sentinel_kwargs or {})
        self.sentinel = Sentinel(self.sentinel_addresses, sentinel_kwargs=options)
        self._lock = threading.Lock()
        self._cached: tuple[tuple[str, int], float] | None = None
        _ALL_SOURCES.add(self)
        scheme = "rediss+sentinel" if self._tls else "redis+sentinel"
        # Sorted: the same shard whatever order a process lists the same sentinels in.
        hosts = ",".join(f"{h}:{p}" for h, p in sorted(self.sentinel_addresses))
        self.label = f"{scheme}://{hosts}/{master_name}/{self.db}"
        self.ring_name = f"sentinel:{master_name}/{self.db}"
        """The shard's name on the hash ring: the master's, so adding or replacing a sentinel moves no channel.
        `hosts.parse_hosts` falls back to `label` when two shards' masters share a name."""
        if not self._tls and any(k.startswith("ssl_") for k in kwargs):
            raise ValueError(f"{source} gives ssl_* options without ssl=True (or a rediss+sentinel:// URL)")
        try:
            self.new_connection()  # not connected: only checks the options now rather than at first use
        except TypeError as exc:
            raise ValueError(f"{source} has an option redis-py's connections do not take: {exc}") from None

    # -- ConnectionSource --------------------------------------------------------

    @property
    def address(self) -> str:
        cached = self._cached
        where = f"{cached[0][0]}:{cached[0][1]}" if cached else "not yet known"
        return f"master {self.master_name!r} (now {where})"

    @property
    def tls(self) -> bool:
        return self._tls

    def new_connection(self, **overrides: Any) -> Any:
        """A not yet connected connection; `connect()` asks the sentinels where the master is."""
        cls = SentinelSSLConnection if self._tls else SentinelConnection
        return cls(source=self, **{**self.connection_kwargs, **overrides})

    # -- discovery ---------------------------------------------------------------

    def master_address(self) -> tuple[str, int]:
        """The master's (host, port) now; raises redis's MasterNotFoundError (a ConnectionError)."""
        now = time.monotonic()
        cached = self._cached
        if cached is not None and now - cached[1] < self.refresh_interval:
            return cached[0]
        with self._lock:  # redis-py's Sentinel reorders its list as it goes: not thread-safe
            try:
                host, port = self.sentinel.discover_master(self.master_name)
            except MasterNotFoundError:
                self._check_name()
                raise
        address = (host, int(port))
        self._cached = (address, now)
        return address

    def _check_name(self) -> None:
        """Raise `LayerConfigurationError` if the sentinels answer and none monitors `master_name`.

        No master found is otherwise an outage (the master is down, a failover is
        under way) and is retried; a misspelt name never gets better.
        """
        known: set[str] = set()
        for client in self.sentinel.sentinels:
            try:
                masters = client.sentinel_masters()
            except (rexc.ConnectionError, rexc.TimeoutError, rexc.ResponseError):
                continue
            if self.master_name in masters:
                return
            known.update(masters)
            # One sentinel that answers is enough: they all monitor the same masters.
            raise LayerConfigurationError(
                f"The sentinels of {self.source} ({self.label}) monitor no master named {self.master_name!r}; "
                f"they know {sorted(known) or 'none'} (the name is the one in `sentinel monitor NAME ...`)"
            )

    def forget(self) -> None:
        """Drop the cached address: the next connection asks the sentinels again."""
        self._cached = None

    def _after_fork(self) -> None:
        # Another thread of the parent may have held the lock at fork(): it would never be released here.
        self._lock = threading.Lock()


_ALL_SOURCES: weakref.WeakSet[SentinelSource] = weakref.WeakSet()


def _reset_in_child() -> None:
    for source in list(_ALL_SOURCES):
        source._after_fork()


os.register_at_fork(after_in_child=_reset_in_child)


class _FollowsMaster:
    """Mixed into a redis-py connection: connect to the master of the moment, drop a demoted one."""

    def __init__(self, *, source: SentinelSource, **kwargs: Any) -> None:
        self.sentinel_source = source
        super().__init__(**kwargs)

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        # Every way of connecting (connect(), a first command) goes through here.
        if self._sock:
            return
        source = self.sentinel_source
        self.host, self.port = source.master_address()
        try:
            super().connect_check_health(*args, **kwargs)
        except (rexc.ConnectionError, rexc.TimeoutError):
            source.forget()
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except rexc.ReadOnlyError as exc:
            # This server was demoted to a replica: the connection is useless, and a
            # network error makes every caller drop it and reconnect to the new master.
            self.sentinel_source.forget()
            self.disconnect()
            raise rexc.ConnectionError(f"{self.host}:{self.port} is no longer the master ({exc})") from None
        except rexc.ResponseError as exc:
            # A write inside a Lua script on a replica comes back wrapped ("... READONLY ..."), and Redis
            # unblocks a blocking pop with UNBLOCKED when its master becomes a replica.
            text = str(exc)
            if "READONLY" in text or text.startswith("UNBLOCKED"):
                self.sentinel_source.forget()
                self.disconnect()
                raise rexc.ConnectionError(f"{self.host}:{self.port} is no longer the master ({exc})") from None
            raise


class SentinelConnection(_FollowsMaster, redis.Connection):
    """A TCP connection to the current master of a Sentinel-monitored service."""


class SentinelSSLConnection(_FollowsMaster, redis.SSLConnection):
    """A TLS connection to the current master of a Sentinel-monitored service."""


# -- parsing -----------------------------------------------------------------------


# Spellings of other tools (kombu's `sentinel://`) or typos: answered with the one this layer reads.
_OTHER_SCHEMES = ("sentinel", "redis-sentinel", "redis_sentinel", "redissentinel", "sentinels")


def is_sentinel_url(text: str) -> bool:
    """True for `redis+sentinel://` URLs, and for near misses, which `from_url` then explains."""
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    return scheme in URL_SCHEMES or scheme in _OTHER_SCHEMES


def from_dict(options: dict[str, Any], source: str) -> SentinelSource:
    """The channels_redis 4 spelling: `sentinels`, `master_name`, `sentinel_kwargs`, then master options."""
    options = dict(options)
    sentinels = options.pop("sentinels")
    master_name = options.pop("master_name", None)
    sentinel_kwargs = options.pop("sentinel_kwargs", None)
    refresh = options.pop("sentinel_refresh_interval", 0)
    if isinstance(sentinels, (str, bytes)) or not isinstance(sentinels, (list, tuple)):
        raise ValueError(f"{source}['sentinels'] must be a list of (host, port) pairs, not {sentinels!r}")
    return SentinelSource(list(sentinels), master_name, options, sentinel_kwargs, refresh, source)


def from_url(url: str, extra: dict[str, Any], source: str) -> SentinelSource:
    """`redis+sentinel://[[user]:password@]h1:26379,h2:26379/master_name[/db][?sentinel_password=..&..]`."""
    shown = redact(url)
    scheme = url.split("://", 1)[0].lower()
    if scheme not in URL_SCHEMES:
        raise ValueError(
            f"{source} {shown!r}: write a Sentinel URL as 'redis+sentinel://host1:26379,host2:26379/master_name/db' "
            "(all sentinels in one URL)"
        )
    parts = urlsplit(url)
    tls = parts.scheme.lower() == "rediss+sentinel"
    netloc = parts.netloc
    options = dict(extra)
    sentinels = host_list(netloc, options, DEFAULT_SENTINEL_PORT, "a sentinel", f"{source} {shown!r}")
    if not sentinels:
        raise ValueError(
            f"{source} {shown!r} names no sentinel: write e.g. 'redis+sentinel://h1:26379,h2:26379/mymaster/0'"
        )
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"{source} {shown!r} must end with /master_name or /master_name/db, e.g. '/mymaster/0'")
    if len(path) == 2:
        options["db"] = int(path[1])
    sentinel_kwargs: dict[str, Any] = {}
    refresh = 0.0
    for key, value in parse_qsl(parts.query):
        if key == "sentinel_password":
            sentinel_kwargs["password"] = value
        elif key == "sentinel_username":
            sentinel_kwargs["username"] = value
        elif key == "sentinel_refresh_interval":
            refresh = float(value)
        elif key in ("socket_timeout", "socket_connect_timeout"):
            options[key] = float(value)
        else:
            raise ValueError(
                f"{source} {shown!r}: unknown option {key!r} (known: sentinel_password, sentinel_username, "
                "sentinel_refresh_interval, socket_timeout, socket_connect_timeout)"
            )
    return SentinelSource(sentinels, unquote(path[0]), options, sentinel_kwargs, refresh, source, tls=tls)


def _address(item: Any, source: str) -> tuple[str, int]:
    if isinstance(item, str):
        host, _, port = item.rpartition(":")
        if host and port.isdigit():
            return host, int(port)
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        return str(item[0]), int(item[1])
    raise ValueError(f"{source}: sentinel {item!r} must be a (host, port) pair or 'host:port'")
