"""The Redis channel layer: msgpack, Lua, flat keyspace, blocking reads on every shard."""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import redis.exceptions as rexc

from .. import names
from ..base import BaseChannelLayer
from ..capacity import Rule
from ..errors import LayerConnectionError
from ..history import HistoryNotSupported, HistorySettings, Position, check_since
from . import framing, group_index
from . import history as redis_history
from .blocking_pop import BlockingPop, Plan
from .cluster import BucketSource
from .cluster_shard import BucketShard, must_retry
from .connection import NETWORK_ERRORS, Shard
from .decoding import Decoder
from .event_receiver import EventReceiver
from .hosts import parse_hosts, ring_name
from .inspection import RedisInspection
from .keys import KeyLayout, split
from .leases import RedisLeases
from .presence import RedisPresence
from .reliable import RedisAtLeastOnce
from .scripts import (
    GROUP_CHANNELS,
    ORDER_ADVANCE,
    ORDER_CLAIM,
    POP,
    SEND,
    Script,
)
from .sharding import HashRing

logger = logging.getLogger("channels_core.layers.redis")


class RedisChannelLayer(RedisInspection, RedisLeases, RedisPresence, RedisAtLeastOnce, BaseChannelLayer):
    """ASGI 1.0 channel layer on one or more Redis servers.

    The constructor takes asgi_redis 1.x's options (same names, same order)
    plus a few of its own; see docs/reference/settings.md for every option and its default.

    `group_index` (with several shards or on Redis Cluster): keep an index
    of which shards hold members of each group, so a group send runs only
    there. Set it False while rolling this release out over one without the
    index (it then keeps existing indexes up to date, creates none and sends
    on every shard); switch it back once no old process runs.
    """

    extensions = [
        "groups",
        "flush",
        "statistics",
        "batch",
        "ordering",
        "event_receiver",
        "leases",
        "inspection",
        "queue_wait",
        "presence",
        "history",
        "at_least_once",
    ]
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
        group_index: bool = True,
        group_history: Mapping[str, Mapping[str, Any]] | None = None,
        at_least_once: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(expiry, group_expiry, capacity, channel_capacity, symmetric_encryption_keys)
        self.history_settings = HistorySettings(group_history)  # the `history` extension (see .history)
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"prefix must be a non-empty str, not {prefix!r}")
        if blocking_timeout <= 0:
            raise ValueError(f"blocking_timeout must be positive, not {blocking_timeout!r}")
        self.prefix = prefix
        self.stats_prefix = prefix + "meta:" if stats_prefix is None else stats_prefix
        self.blocking_timeout = blocking_timeout
        self.statistics_enabled = statistics
        self.group_index = group_index
        self.hosts = parse_hosts(hosts, connection_kwargs)
        self.shards = [_shard(i, host, max_connections, pool_timeout) for i, host in enumerate(self.hosts)]
        self.ring = HashRing([ring_name(host) for host in self.hosts])
        tags = [getattr(host, "hash_tag", "") for host in self.hosts]
        if any(tags) and any(c in prefix + self.stats_prefix for c in "{}"):
            raise ValueError(f"On Redis Cluster prefixes may not hold '{{' or '}}' (a hash tag follows): {prefix!r}")
        self.keys = KeyLayout(prefix, self.stats_prefix, statistics, self.capacity_rules, self.shards, self.ring, tags)
        self.decoder = Decoder(self.keys.queue_name, self.serializer.loads, int(expiry * 1000))
        self._expiry_ms = int(expiry * 1000)
        self._queue_ttl = math.ceil(expiry * 2) + 1
        self._group_ttl = math.ceil(group_expiry)
        self._lua_capacity = [x for rule in self.capacity_rules.lua_rules() for x in rule]
        self._closed = threading.Event()
        self._blocking_pop = BlockingPop(self.decoder, blocking_timeout, self._closed)
        self._alo_setup(at_least_once)  # at-least-once channels (see .reliable)

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
        if self._alo:
            policy = self._alo.get(channel)  # only plain names can match: the channel is its queue
            if policy is not None:
                return self._alo_send(channel, policy, payloads)
        target = self.keys.send_target(channel)
        local = split(channel)[1]
        sent = self.shards[target.shard].evalsha(
            SEND,
            target.keys,
            (self._expiry_ms, target.capacity, self._queue_ttl, *(framing.unstamped(local, p) for p in payloads)),
        )
        if sent < 0:
            raise self.ChannelFull(
                f"Channel {channel!r} is full: {-1 - sent} messages waiting, capacity {target.capacity}"
            )

    # -- receiving -------------------------------------------------------------

    def receive(self, channels: Iterable[str], block: bool = False) -> tuple[str | None, dict | None]:
        """Return `(channel, message)` or `(None, None)`.

        With `block=True` waits on every shard at once, up to `blocking_timeout`
        seconds; during a Redis outage it keeps retrying with backoff instead
        of raising.
        """
        wanted = names.validate_receive_channels(channels)
        alo = [q for q in wanted if self._alo.get(q)] if self._alo else None
        if alo:
            got = self._alo_receive(wanted, alo, 1, block, None)
            return got[0] if got else (None, None)
        self.decoder.waits.begin()  # the `queue_wait` extension
        if self.decoder:
            hit = self.decoder.take(wanted, 1)
            if hit:
                return hit[0]
        plan = self.keys.read_plan(wanted)
        got = self._blocking_pop.pop(plan, 1) if block else self._pop(plan, 1)
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
        alo = [q for q in wanted if self._alo.get(q)] if self._alo else None
        if alo:
            return self._alo_receive(wanted, alo, max_messages, block, timeout)
        self.decoder.waits.begin()  # the `queue_wait` extension
        out = self.decoder.take(wanted, max_messages) if self.decoder else []
        if len(out) >= max_messages:
            return out
        plan = self.keys.read_plan(wanted)
        if out or not block or (timeout is not None and timeout <= 0):
            try:
                return out + self._pop(plan, max_messages - len(out))
            except LayerConnectionError:
                if out:
                    return out
                raise
        return self._blocking_pop.pop(plan, max_messages, timeout)

    def send_then_receive_batch(
        self, channel: str, message: dict, channels: Iterable[str], max_messages: int, timeout: float
    ) -> list[tuple[str, dict]]:
        """`send(channel, message)`, then `receive_batch(channels, max_messages, block=True, timeout=timeout)`.

        In one write and one round trip fewer when the send's queue and the
        read's are on the same plain Redis server and nothing is buffered
        locally: a worker sends its last reply with its next read. Raises
        like `send` (ChannelFull, MessageTooLarge, LayerConnectionError), and
        then nothing was read: whatever the cancelled read took anyway is
        buffered for the next receive.
        """
        names.validate_channel_name(channel)
        wanted = names.validate_receive_channels(channels)
        payload = self.serializer.dumps(message)
        alo = self._alo and (self._alo.get(channel) or any(self._alo.get(q) for q in wanted))
        target = self.keys.send_target(channel)
        shard = self.shards[target.shard]
        plan = self.keys.read_plan(wanted) if not alo and not self.decoder and timeout > 0 else []
        if len(plan) != 1 or plan[0][0] is not shard or type(shard) is not Shard or shard.clock_offset_ms is None:
            self._send(channel, [payload])
            return self.receive_batch(wanted, max_messages, block=True, timeout=timeout)
        self.decoder.waits.begin()  # the `queue_wait` extension
        local = split(channel)[1]
        args = (self._expiry_ms, target.capacity, self._queue_ttl, framing.unstamped(local, payload))
        command = ("EVALSHA", SEND.sha, len(target.keys), *target.keys, *args)
        sent, got = self._blocking_pop.pop_after(
            command, plan, max_messages, timeout, lambda reply: isinstance(reply, int) and reply >= 0
        )
        if isinstance(sent, Exception):
            # The read was cancelled (its messages kept). Sent the usual way, the script is loaded
            # (NOSCRIPT: the server restarted) or the error raised as `send` raises it.
            self._send(channel, [payload])
        elif sent < 0:
            raise self.ChannelFull(
                f"Channel {channel!r} is full: {-1 - sent} messages waiting, capacity {target.capacity}"
            )
        return got

    def _pop(self, plan: Plan, max_messages: int) -> list[tuple[str, dict]]:
        """What is waiting now, without blocking: the POP script on each shard, starting at a random one."""
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
                out += self.decoder.unpack(keys[reply[i] - 1], reply[i + 1], shard, None, max_messages - len(out))
            if len(out) >= max_messages:
                break
        if error is not None and not out:
            raise error
        return out

    # -- groups ----------------------------------------------------------------

    def group_add(self, group: str, channel: str) -> None:
        """Add `channel` to `group` (idempotent); membership lasts `group_expiry` seconds.

        With several shards, also records in the group's index that the
        channel's shard holds members (a second round trip when the index
        lives on another shard; see `group_index`).
        """
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        group_index.add(self, group, *split(channel))

    def group_discard(self, group: str, channel: str) -> None:
        """Remove `channel` from `group`; a no-op if it is not a member."""
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        group_index.discard(self, group, *split(channel))

    def group_channels(self, group: str) -> list[str]:
        """The live members of `group`."""
        names.validate_group_name(group)
        calls = [(shard, [self.keys.group_key(group, shard.index)], (self._group_ttl,)) for shard in self.shards]
        return [m.decode("ascii") for reply in self._evalsha_each(GROUP_CHANNELS, calls) for m in reply]

    def send_group(self, group: str, message: dict) -> None:
        """Send to every member of `group`: one Lua call per shard holding members, one push per process.

        With several shards the group's home shard goes first (its reply
        carries the group's index), then the shards the index names, one
        round trip per Redis server (see `group_index`).

        Never raises ChannelFull: members whose channel is full are skipped,
        counted in the statistics and logged.
        """
        names.validate_group_name(group)
        rule = self.history_settings.rule_for(group)
        if rule is not None:
            full, evicted = redis_history.send(self, group, rule, self.serializer.dumps(message))
        else:
            full, evicted = group_index.send(self, group, self.serializer.dumps(message))
        if full:
            logger.warning("send_group %r: %d members skipped because their channels are full", group, full)
        if evicted:
            logger.info("send_group %r: evicted %d members whose messages expired unread", group, evicted)

    def history_join(self, group: str, channel: str, since: Position | str) -> None:
        """Add `channel` to `group` and, in the same script, queue what it missed after `since` and a status frame.

        See `.history` for the frames (and how several shards take turns);
        raises `HistoryNotSupported` when `group` keeps no history.
        """
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        since = check_since(since)
        rule = self.history_settings.rule_for(group)
        if rule is None:
            raise HistoryNotSupported(f"group {group!r} keeps no history: no group_history pattern matches it")
        redis_history.join(self, group, channel, rule, since)

    def _exact_capacity_rules(self, shard: Shard, group_key: bytes) -> list[Any]:
        """Capacity of each member queue as exact Lua patterns (regex rules only run in Python)."""
        members = shard.evalsha(GROUP_CHANNELS, [group_key], [self._group_ttl])
        rules: list[Any] = []
        for qname in {names.list_name(m.decode("ascii")) for m in members}:
            rules += ["^" + "".join(c if c.isalnum() else "%" + c for c in qname) + "$", self.capacity_rules.get(qname)]
        return rules

    def _evalsha_each(self, script: Script, calls: list[tuple[Shard, list[bytes], tuple]]) -> list[Any]:
        """Run `script` once per `(shard, keys, args)`: one round trip per Redis server, replies in order.

        On Redis Cluster many buckets share a master; their scripts go to it
        in one pipeline. A reply that says "not here" or "script unknown"
        (a reshard, a new master) is run again on its own shard, which
        follows redirections and loads scripts.
        """
        commands = [(shard, ("EVALSHA", script.sha, len(keys), *keys, *args)) for shard, keys, args in calls]
        return self._run_each(commands, lambda i: calls[i][0].evalsha(script, calls[i][1], calls[i][2]))

    def _execute_each(self, commands: list[tuple[Shard, tuple]]) -> list[Any]:
        """Run one command per `(shard, command)`, one round trip per Redis server, replies in order."""
        return self._run_each(commands, lambda i: commands[i][0].execute(*commands[i][1]))

    def _run_each(self, commands: list[tuple[Shard, tuple]], again: Callable[[int], Any]) -> list[Any]:
        results: list[Any] = [None] * len(commands)
        by_server: dict[int, tuple[Shard, list[int]]] = {}
        for i, (shard, _) in enumerate(commands):
            server = shard.server()
            by_server.setdefault(id(server), (server, []))[1].append(i)
        # Every server's pipeline is written before any reply is read: one round trip of wall time.
        sent = []
        error: LayerConnectionError | None = None
        failure: rexc.ResponseError | None = None
        for server, indexes in by_server.values():
            try:
                sent.append((server, indexes, server.send_commands([commands[i][1] for i in indexes])))
            except LayerConnectionError as exc:
                error = error or exc
        for server, indexes, conn in sent:
            try:
                replies = server.read_replies(conn, len(indexes), errors=True)
            except LayerConnectionError as exc:
                error = error or exc
                continue
            for i, reply in zip(indexes, replies, strict=True):
                if isinstance(reply, rexc.NoScriptError) or must_retry(reply):
                    reply = again(i)  # on its own shard, which loads the script or follows the redirect
                elif isinstance(reply, rexc.ResponseError):
                    failure = failure or reply  # raised once every server's replies are read
                results[i] = reply
        if failure is not None:
            raise failure
        if error is not None:
            raise error
        return results

    # -- per-connection ordering (the `ordering` extension, see ..order_book) --

    def _order_place(self, reply_channel: str) -> tuple[Shard, list[bytes]]:
        names.validate_channel_name(reply_channel)
        return self.keys.shard_of(names.list_name(reply_channel)), [self.keys.order_key(reply_channel)]

    def order_claim(
        self, reply_channel: str, order: int, channel: str, message: dict, timeout: float, max_parked: int
    ) -> str:
        """Is `order` the one this connection waits for? `run`, `parked` (stored), `stale`, `stuck` or `dead`."""
        shard, keys = self._order_place(reply_channel)
        payload = self._park(channel, message)
        reply = shard.evalsha(
            ORDER_CLAIM, keys, (int(order), payload, int(timeout * 1000), max_parked, self._group_ttl)
        )
        return reply.decode("ascii") if isinstance(reply, bytes) else reply

    def order_advance(self, reply_channel: str, order: int) -> tuple[str, dict] | None:
        """Mark `order` done; the parked message that is now next, `(channel, message)`, taken out, or None."""
        shard, keys = self._order_place(reply_channel)
        return self._unpark(shard.evalsha(ORDER_ADVANCE, keys, (int(order), self._group_ttl)))

    def order_forget(self, reply_channel: str) -> None:
        """Drop a connection's ordering state (after its disconnect)."""
        shard, keys = self._order_place(reply_channel)
        shard.execute("UNLINK", *keys)

    # -- the `event_receiver` extension ---------------------------------------

    def event_receiver(self, channels: Iterable[str], max_messages: int = 100) -> EventReceiver:
        """A blocking read for an event loop to drive (see `EventReceiver`).

        Raises `NotImplementedError` when `channels` live on several Redis
        servers (a process channel lives on one) or the connection is TLS.
        """
        wanted = names.validate_receive_channels(channels)
        plan = self.keys.read_plan(wanted)
        if len(plan) != 1:
            raise NotImplementedError(
                "EventReceiver reads channels that live on one Redis server (a process channel does); "
                f"{wanted} span {len(plan)} servers"
            )
        shard, keys = plan[0]
        return EventReceiver(shard, keys, self.decoder, self.blocking_timeout, max_messages)

    # -- flush and statistics --------------------------------------------------

    def flush(self) -> None:
        """Delete every key under this layer's prefixes (SCAN, never KEYS) and the local buffer."""
        for shard in self._servers():
            for pattern in self.keys.scan_patterns():
                cursor = 0
                while True:
                    cursor, keys = shard.execute("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
                    if keys:
                        # One key per UNLINK: a cluster node refuses keys of several slots in one command.
                        shard.pipeline([("UNLINK", key) for key in keys])
                    if int(cursor) == 0:
                        break
        self.decoder.clear()

    def global_statistics(self) -> dict[str, int]:
        """`messages_count` and `channel_full_count` summed over the servers."""
        totals = {"messages_count": 0, "channel_full_count": 0}
        commands = [(shard, ("HGETALL", self.keys.global_stats_key(shard.index))) for shard in self.shards]
        for reply in self._execute_each(commands):
            _add_counters(totals, reply)
        return totals

    def channel_statistics(self, channel: str) -> dict[str, float]:
        """Counters for `channel`'s queue plus `messages_pending` and `messages_max_age` (s)."""
        names.validate_channel_name(channel)
        qname = names.list_name(channel)
        stats: dict[str, float] = {"messages_count": 0, "channel_full_count": 0, "messages_pending": 0}
        oldest = 0.0
        home = self.keys.send_target(channel).shard
        for shard in self.shards:
            # "x?random" counts under "x?" on the shard of each such name, so every shard may hold counters.
            stats_key = self.keys.stats_key(qname, shard.index)
            if shard.index != home:
                _add_counters(stats, shard.execute("HGETALL", stats_key))
                continue
            queue_key = self.keys.key_on(shard.index, qname)
            counters, pending, head = shard.pipeline(
                [("HGETALL", stats_key), ("LLEN", queue_key), ("LINDEX", queue_key, 0)]
            )
            _add_counters(stats, counters)
            stats["messages_pending"] += pending
            if head:
                deadline = int(head[: framing.DEADLINE_DIGITS])
                oldest = max(oldest, (shard.now_ms() - (deadline - self._expiry_ms)) / 1000)
        stats["messages_max_age"] = max(0.0, oldest)
        if self._alo and self._alo.get(qname):
            self._alo_statistics(qname, stats)  # its own expiry, and what is in flight
        return stats

    def _servers(self) -> list[Shard]:
        """Each Redis server once (on Redis Cluster: each master), for commands about the whole keyspace."""
        cluster = getattr(self.shards[0], "cluster", None)
        if cluster is None:
            return list(self.shards)
        try:
            return [cluster.pool(address) for address in cluster.masters()]
        except NETWORK_ERRORS as exc:
            raise self.shards[0].failed(exc) from None

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
        # A cluster's 48 buckets are one host to the reader.
        hosts = ", ".join(dict.fromkeys(getattr(h, "cluster", h).label for h in self.hosts))
        return f"<RedisChannelLayer hosts=[{hosts}] prefix={self.prefix!r}>"


def _shard(index: int, host: Any, max_connections: int, pool_timeout: float) -> Shard:
    if isinstance(host, BucketSource):
        return BucketShard(index, host, max_connections, pool_timeout)
    return Shard(index, host, max_connections, pool_timeout)


def _add_counters(totals: dict[str, Any], reply: Any) -> None:
    if isinstance(reply, dict):
        items = reply.items()
    else:
        items = zip(reply[::2], reply[1::2], strict=False)
    for field, value in items:
        name = field.decode("ascii") if isinstance(field, bytes) else field
        totals[name] = totals.get(name, 0) + int(value)
