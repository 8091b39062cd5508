"""The Redis channel layer: msgpack, Lua, flat keyspace, blocking reads on every shard."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from .. import names
from ..base import BaseChannelLayer
from ..capacity import Rule
from ..errors import LayerConnectionError
from . import framing
from .connection import PendingPop, Shard, wait_any
from .event_receiver import EventReceiver
from .hosts import parse_hosts
from .scripts import GROUP_ADD, GROUP_CHANNELS, GROUP_DISCARD, GROUP_SEND, ORDER_ADVANCE, ORDER_CLAIM, POP, SEND
from .sharding import HashRing

logger = logging.getLogger("channels_core.layers.redis")

_MAX_BACKOFF = 1.0


class _Route(NamedTuple):
    keys: tuple[bytes, ...]
    capacity: int
    shard: int


class _Buffered(NamedTuple):
    channel: str
    expires: float  # time.monotonic()
    payload: memoryview


class RedisChannelLayer(BaseChannelLayer):
    """ASGI 1.0 channel layer on one or more Redis servers.

    The constructor takes asgi_redis 1.x's options (same names, same order)
    plus a few of its own; see the README for every option and its default.
    """

    extensions = ["groups", "flush", "statistics", "batch", "ordering"]
    local_only = False

    def __init__(
        self,
        expiry: float = 60,
        hosts: Any = None,
        prefix: str = "asgi:",
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Rule, int] | None = None,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        stats_prefix: str | None = None,
        connection_kwargs: dict[str, Any] | None = None,
        blocking_timeout: float = 5,
        max_connections: int = 64,
        pool_timeout: float = 30,
        statistics: bool = True,
    ) -> None:
        super().__init__(expiry, group_expiry, capacity, channel_capacity, symmetric_encryption_keys)
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"prefix must be a non-empty str, not {prefix!r}")
        if blocking_timeout <= 0:
            raise ValueError(f"blocking_timeout must be positive, not {blocking_timeout!r}")
        self.prefix = prefix
        self.stats_prefix = prefix + "meta:" if stats_prefix is None else stats_prefix
        self.blocking_timeout = blocking_timeout
        self.statistics_enabled = statistics
        self.hosts = parse_hosts(hosts, connection_kwargs)
        self.shards = [Shard(i, host, max_connections, pool_timeout) for i, host in enumerate(self.hosts)]
        self.ring = HashRing([host.label for host in self.hosts])
        self._prefix_bytes = prefix.encode("ascii")
        self._expiry_ms = int(expiry * 1000)
        self._queue_ttl = math.ceil(expiry * 2) + 1
        self._group_ttl = math.ceil(group_expiry)
        self._global_stats_key = (self.stats_prefix + "#global#").encode("ascii")
        self._lua_capacity = [x for rule in self.capacity_rules.lua_rules() for x in rule]
        self._routes: dict[str, _Route] = {}
        self._plans: dict[tuple[str, ...], list[tuple[Shard, list[bytes]]]] = {}
        self._buffer: dict[str, deque[_Buffered]] = {}
        self._buffer_lock = threading.Lock()
        self._closed = threading.Event()

    # -- names to keys ---------------------------------------------------------

    def _key(self, name: str) -> bytes:
        return self._prefix_bytes + name.encode("ascii")

    def _group_key(self, group: str) -> bytes:
        return self._key("group:" + group)

    def _route(self, channel: str) -> _Route:
        qname = names.list_name(channel)
        route = self._routes.get(qname)
        if route is None:
            keys: tuple[bytes, ...] = (self._key(qname),)
            if self.statistics_enabled:
                keys += ((self.stats_prefix + _stats_name(qname)).encode("ascii"), self._global_stats_key)
            route = _Route(keys, self.capacity_rules.get(qname), self.ring.get(qname))
            if len(self._routes) > 10_000:
                self._routes.clear()
            self._routes[qname] = route
        return route

    def _plan(self, wanted: list[str]) -> list[tuple[Shard, list[bytes]]]:
        """Which keys to read on which shard for a receive on `wanted`."""
        cache_key = tuple(wanted)
        plan = self._plans.get(cache_key)
        if plan is None:
            per_shard: dict[int, list[bytes]] = {}
            for name in wanted:
                per_shard.setdefault(self.ring.get(name), []).append(self._key(name))
            plan = [(self.shards[i], keys) for i, keys in sorted(per_shard.items())]
            if len(self._plans) > 1000:
                self._plans.clear()
            self._plans[cache_key] = plan
        return plan

    # -- sending ---------------------------------------------------------------

    def send(self, channel: str, message: dict) -> None:
        """Send a message; raises ChannelFull, MessageTooLarge, or LayerConnectionError."""
        names.validate_channel_name(channel)
        self._send(channel, [self.serializer.dumps(message)])

    def send_many(self, channel: str, messages: Sequence[dict]) -> None:
        """Send several messages to one channel in one round trip, all or none."""
        names.validate_channel_name(channel)
        payloads = [self.serializer.dumps(m) for m in messages]
        if payloads:
            self._send(channel, payloads)

    def _send(self, channel: str, payloads: list[bytes]) -> None:
        route = self._route(channel)
        local = _split(channel)[1]
        sent = self.shards[route.shard].evalsha(
            SEND,
            route.keys,
            (self._expiry_ms, route.capacity, self._queue_ttl, *(framing.tail(local, p) for p in payloads)),
        )
        if sent < 0:
            raise self.ChannelFull(
                f"Channel {channel!r} is full: {-1 - sent} messages waiting, capacity {route.capacity}"
            )

    # -- receiving -------------------------------------------------------------

    def receive(self, channels: Iterable[str], block: bool = False) -> tuple[str | None, dict | None]:
        """Return `(channel, message)` or `(None, None)`.

        With `block=True` waits on every shard at once, up to `blocking_timeout`
        seconds; during a Redis outage it keeps retrying with backoff instead
        of raising.
        """
        wanted = names.validate_receive_channels(channels)
        if self._buffer:
            hit = self._take_buffered(wanted, 1)
            if hit:
                return hit[0]
        plan = self._plan(wanted)
        got = self._blocking_pop(plan, 1) if block else self._pop(plan, 1)
        return got[0] if got else (None, None)

    def receive_batch(
        self, channels: Iterable[str], max_messages: int = 100, block: bool = False, timeout: float | None = None
    ) -> list[tuple[str, dict]]:
        """Up to `max_messages` waiting messages, in one round trip per shard.

        With `block=True`, waits like `receive` until something arrives; on
        Redis 7+ that is one BLMPOP taking up to `max_messages` at once.
        `timeout` (seconds) replaces `blocking_timeout` for this call and is
        kept to the millisecond (Redis itself only times out on its 100 ms
        timer tick); 0 or less does not wait.
        """
        wanted = names.validate_receive_channels(channels)
        out = self._take_buffered(wanted, max_messages) if self._buffer else []
        if len(out) >= max_messages:
            return out
        plan = self._plan(wanted)
        if out or not block or (timeout is not None and timeout <= 0):
            try:
                return out + self._pop(plan, max_messages - len(out))
            except LayerConnectionError:
                if out:
                    return out
                raise
        return self._blocking_pop(plan, max_messages, timeout)

    def _pop(self, plan: list[tuple[Shard, list[bytes]]], max_messages: int) -> list[tuple[str, dict]]:
        out: list[tuple[str, dict]] = []
        error = None
        start = random.randrange(len(plan)) if len(plan) > 1 else 0
        for shard, keys in plan[start:] + plan[:start]:
            if len(keys) > 1:
                keys = random.sample(keys, len(keys))
            try:
                reply = shard.evalsha(POP, keys, (max_messages - len(out),))
            except LayerConnectionError as exc:
                error = exc
                continue
            for i in range(0, len(reply), 2):
                out += self._unpack(keys[reply[i] - 1], reply[i + 1], shard, None, max_messages - len(out))
            if len(out) >= max_messages:
                break
        if error is not None and not out:
            raise error
        return out

    def _blocking_pop(
        self, plan: list[tuple[Shard, list[bytes]]], limit: int, timeout: float | None = None
    ) -> list[tuple[str, dict]]:
        deadline = time.monotonic() + (self.blocking_timeout if timeout is None else timeout)
        backoff = 0.05
        while not self._closed.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                for shard, _ in plan:
                    if shard.clock_offset_ms is None:
                        shard.handshake()
                if timeout is not None:
                    popped = self._blpop_many(plan, remaining, limit, exact=True)
                elif len(plan) == 1:
                    popped = self._blpop_one(plan[0], remaining, limit)
                else:
                    popped = self._blpop_many(plan, remaining, limit)
            except LayerConnectionError:
                self._closed.wait(min(backoff, max(remaining, 0)))
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            if popped is None:
                continue
            key, elements, shard = popped
            now = shard.now_ms()
            got: list[tuple[str, dict]] = []
            for element in elements:
                got += self._unpack(key, element, shard, now, limit - len(got))
            if got:
                return got
        return []

    def _blpop_one(self, shard_keys: tuple[Shard, list[bytes]], timeout: float, count: int):
        shard, keys = shard_keys
        if len(keys) > 1:
            keys = random.sample(keys, len(keys))
        pending = PendingPop(shard, keys, timeout, need_id=False, count=count)
        if not pending.wait(timeout + 2.0):
            pending.abandon()
            return None
        reply = pending.result()
        return (reply[0], reply[1], shard) if reply else None

    def _blpop_many(self, plan: list[tuple[Shard, list[bytes]]], timeout: float, count: int, exact: bool = False):
        """A blocking pop on every shard at once; the first reply wins, the others are cancelled.

        With `exact`, the wait ends at `timeout` to the millisecond: the server
        side only knows whole seconds (and checks them on its timer tick), so
        each read still waiting then is cancelled with CLIENT UNBLOCK. An
        element that raced in before a cancel is returned or kept, never dropped.
        """
        pending: list[PendingPop] = []
        error = None
        for shard, keys in plan:
            try:
                pending.append(PendingPop(shard, random.sample(keys, len(keys)), timeout, need_id=True, count=count))
            except LayerConnectionError as exc:
                error = exc
        if not pending:
            raise error or LayerConnectionError("no Redis server reachable")
        winner = None
        end = time.monotonic() + timeout + (0.0 if exact else 2.0)
        try:
            while pending and winner is None:
                ready = wait_any(pending, end - time.monotonic())
                if not ready:
                    break
                for p in ready:
                    pending.remove(p)
                    try:
                        reply = p.result()
                    except LayerConnectionError:
                        continue
                    if reply and winner is None:
                        winner = (reply[0], reply[1], p.shard)
                    elif reply:
                        self._stash(reply, p.shard)
        finally:
            for p in pending:
                reply = self._cancel(p)
                if reply and winner is None:
                    winner = (reply[0], reply[1], p.shard)
                elif reply:
                    self._stash(reply, p.shard)
        if winner is None and error is not None:
            raise error
        return winner

    def _cancel(self, pending: PendingPop) -> tuple[bytes, list[bytes]] | None:
        """Unblock a pending pop and return what it popped before the unblock landed, if anything."""
        try:
            pending.shard.execute("CLIENT", "UNBLOCK", pending.client_id)
        except LayerConnectionError:
            pending.abandon()
            return None
        if not pending.wait(2.0):
            pending.abandon()
            return None
        try:
            return pending.result()
        except LayerConnectionError:
            return None  # result() already dropped the connection

    def _stash(self, reply: tuple[bytes, list[bytes]], shard: Shard) -> None:
        """Keep messages popped by a read that lost the race, for the next receive."""
        now = shard.now_ms()
        for element in reply[1]:
            self._unpack(reply[0], element, shard, now, 0)

    def _unpack(
        self, key: bytes, element: bytes, shard: Shard, now_ms: float | None, limit: int
    ) -> list[tuple[str, dict]]:
        """Decode one list element into up to `limit` messages; buffer the rest (fan-out)."""
        qname = key[len(self._prefix_bytes) :].decode("ascii")
        try:
            deadline, targets, payload = framing.parse(element)
        except ValueError:
            logger.error("Dropped an unreadable element on channel %r (not written by this layer)", qname)
            return []
        if now_ms is not None and deadline <= now_ms:
            return []
        if qname.endswith("!"):
            channels = [qname + t for t in targets.decode("ascii").split(",")]
        else:
            channels = [qname]
        out = []
        for channel in channels[:limit]:
            message = self._loads(channel, payload)
            if message is not None:
                out.append((channel, message))
        if len(channels) > limit:
            now = shard.now_ms() if now_ms is None else now_ms
            expires = time.monotonic() + (deadline - now) / 1000
            with self._buffer_lock:
                queue = self._buffer.setdefault(qname, deque())
                queue.extend(_Buffered(c, expires, payload) for c in channels[limit:])
        return out

    def _loads(self, channel: str, payload: memoryview) -> dict | None:
        try:
            return self.serializer.loads(payload)
        except Exception as exc:
            logger.error("Dropped an undecodable message on channel %r: %s", channel, type(exc).__name__)
            return None

    def _take_buffered(self, wanted: list[str], limit: int) -> list[tuple[str, dict]]:
        out: list[tuple[str, dict]] = []
        now = time.monotonic()
        with self._buffer_lock:
            for name in wanted:
                queue = self._buffer.get(name)
                while queue and len(out) < limit:
                    item = queue.popleft()
                    if item.expires > now:
                        out.append((item.channel, item.payload))
                if queue is not None and not queue:
                    del self._buffer[name]
        return [(c, m) for c, p in out if (m := self._loads(c, p)) is not None]

    # -- groups ----------------------------------------------------------------

    def _member_shard(self, qname: str) -> Shard:
        # A member lives on the shard of its queue, so a group send is one
        # script per shard touching only local keys.
        return self.shards[self.ring.get(qname)]

    def group_add(self, group: str, channel: str) -> None:
        """Add `channel` to `group` (idempotent); membership lasts `group_expiry` seconds."""
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        qname, local = _split(channel)
        self._member_shard(qname).evalsha(GROUP_ADD, [self._group_key(group)], [qname, local, self._group_ttl])

    def group_discard(self, group: str, channel: str) -> None:
        """Remove `channel` from `group`; a no-op if it is not a member."""
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        qname, local = _split(channel)
        self._member_shard(qname).evalsha(GROUP_DISCARD, [self._group_key(group)], [qname, local])

    def group_channels(self, group: str) -> list[str]:
        """The live members of `group`."""
        names.validate_group_name(group)
        members: list[str] = []
        for shard in self.shards:
            reply = shard.evalsha(GROUP_CHANNELS, [self._group_key(group)], [self._group_ttl])
            members += [m.decode("ascii") for m in reply]
        return members

    def send_group(self, group: str, message: dict) -> None:
        """Send to every member of `group`: one Lua call per shard, one push per process.

        Never raises ChannelFull: members whose channel is full are skipped,
        counted in the statistics and logged.
        """
        names.validate_group_name(group)
        payload = self.serializer.dumps(message)
        keys = [self._group_key(group)]
        if self.statistics_enabled:
            keys.append(self._global_stats_key)
        full = evicted = 0
        for shard in self.shards:
            rules = self._lua_capacity
            if self.capacity_rules.has_regex_rules:
                rules = self._exact_capacity_rules(shard, keys[0]) + rules
            args = (payload, self._expiry_ms, self._group_ttl, self._queue_ttl, self.prefix, self.capacity, *rules)
            _, shard_full, shard_evicted = shard.evalsha(GROUP_SEND, keys, args)
            full += shard_full
            evicted += shard_evicted
        if full:
            logger.warning("send_group %r: %d members skipped because their channels are full", group, full)
        if evicted:
            logger.info("send_group %r: evicted %d members whose messages expired unread", group, evicted)

    def _exact_capacity_rules(self, shard: Shard, group_key: bytes) -> list[Any]:
        """Capacity of each member queue as exact Lua patterns (regex rules only run in Python)."""
        members = shard.evalsha(GROUP_CHANNELS, [group_key], [self._group_ttl])
        rules: list[Any] = []
        for qname in {names.list_name(m.decode("ascii")) for m in members}:
            rules += ["^" + "".join(c if c.isalnum() else "%" + c for c in qname) + "$", self.capacity_rules.get(qname)]
        return rules

    # -- per-connection ordering (the `ordering` extension, see ..ordering) ----

    def _order_place(self, reply_channel: str) -> tuple[Shard, list[bytes]]:
        names.validate_channel_name(reply_channel)
        return self._member_shard(names.list_name(reply_channel)), [self._key("order:" + reply_channel)]

    def order_claim(
        self, reply_channel: str, order: int, channel: str, message: dict, timeout: float, max_parked: int
    ) -> str:
        """Is `order` the one this connection waits for? `run`, `parked` (stored), `stale`, `stuck` or `dead`."""
        shard, keys = self._order_place(reply_channel)
        payload = self.serializer.dumps({"channel": channel, "content": message})
        reply = shard.evalsha(
            ORDER_CLAIM, keys, (int(order), payload, int(timeout * 1000), max_parked, self._group_ttl)
        )
        return reply.decode("ascii") if isinstance(reply, bytes) else reply

    def order_advance(self, reply_channel: str, order: int) -> tuple[str, dict] | None:
        """Mark `order` done; the parked message that is now next, `(channel, message)`, taken out, or None."""
        shard, keys = self._order_place(reply_channel)
        payload = shard.evalsha(ORDER_ADVANCE, keys, (int(order), self._group_ttl))
        if not payload:
            return None
        parked = self.serializer.loads(payload)
        return parked["channel"], parked["content"]

    def order_forget(self, reply_channel: str) -> None:
        """Drop a connection's ordering state (after its disconnect)."""
        shard, keys = self._order_place(reply_channel)
        shard.execute("UNLINK", *keys)

    def event_receiver(self, channels: Iterable[str], max_messages: int = 100) -> EventReceiver:
        """A blocking read for an event loop to drive (see `EventReceiver`); one Redis server only."""
        return EventReceiver(self, channels, max_messages)

    # -- flush and statistics --------------------------------------------------

    def flush(self) -> None:
        """Delete every key under this layer's prefixes (SCAN, never KEYS) and the local buffer."""
        patterns = {_glob_escape(self.prefix) + "*", _glob_escape(self.stats_prefix) + "*"}
        for shard in self.shards:
            for pattern in patterns:
                cursor = 0
                while True:
                    cursor, keys = shard.execute("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
                    if keys:
                        shard.execute("UNLINK", *keys)
                    if int(cursor) == 0:
                        break
        with self._buffer_lock:
            self._buffer.clear()

    def global_statistics(self) -> dict[str, int]:
        """`messages_count` and `channel_full_count` summed over the servers."""
        totals = {"messages_count": 0, "channel_full_count": 0}
        for shard in self.shards:
            _add_counters(totals, shard.execute("HGETALL", self._global_stats_key))
        return totals

    def channel_statistics(self, channel: str) -> dict[str, float]:
        """Counters for `channel`'s queue plus `messages_pending` and `messages_max_age` (s)."""
        names.validate_channel_name(channel)
        qname = names.list_name(channel)
        stats: dict[str, float] = {"messages_count": 0, "channel_full_count": 0, "messages_pending": 0}
        oldest = 0.0
        stats_key = (self.stats_prefix + _stats_name(qname)).encode("ascii")
        for shard in self.shards:
            counters, pending, head = shard.pipeline(
                [("HGETALL", stats_key), ("LLEN", self._key(qname)), ("LINDEX", self._key(qname), 0)]
            )
            _add_counters(stats, counters)
            stats["messages_pending"] += pending
            if head:
                deadline = int(head[: framing.DEADLINE_DIGITS])
                oldest = max(oldest, (shard.now_ms() - (deadline - self._expiry_ms)) / 1000)
        stats["messages_max_age"] = max(0.0, oldest)
        return stats

    def ping(self) -> None:
        """Connect to every Redis server once (version check, clock) so a process can fail at start.

        Raises `LayerConfigurationError` when a server refuses the settings
        (a db index it does not have, a wrong password) and
        `LayerConnectionError` when one cannot be reached.
        """
        for shard in self.shards:
            shard.handshake()

    def close(self) -> None:
        """Wake blocked receives (they return within one blocking read) and close connections."""
        self._closed.set()
        for shard in self.shards:
            shard.close()

    def __repr__(self) -> str:
        hosts = ", ".join(h.label for h in self.hosts)
        return f"<RedisChannelLayer hosts=[{hosts}] prefix={self.prefix!r}>"


def _split(channel: str) -> tuple[str, str]:
    """(queue name, local part): ("server!", "abc") for "server!abc", (channel, "") otherwise."""
    bang = channel.find("!")
    return (channel, "") if bang < 0 else (channel[: bang + 1], channel[bang + 1 :])


def _stats_name(qname: str) -> str:
    # Counters for "x?random" go to "x?", so unique reply channels never grow the keyspace.
    mark = qname.find("?")
    return qname if mark < 0 else qname[: mark + 1]


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _add_counters(totals: dict[str, Any], reply: Any) -> None:
    if isinstance(reply, dict):
        items = reply.items()
    else:
        items = zip(reply[::2], reply[1::2], strict=False)
    for field, value in items:
        name = field.decode("ascii") if isinstance(field, bytes) else field
        totals[name] = totals.get(name, 0) + int(value)
