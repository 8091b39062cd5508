"""The `leases` extension of the Redis layer: process liveness kept in Redis.

See `channels_core.layers.contract.LeasesExtension` for the semantics. Here:

- A holder's lease, info and connections live on one shard, the shard of
  the holder's name taken as a queue name (`KeyLayout.lease_shard`). An
  interface server holds its lease as its process channel prefix, so its
  connections' ordering state and its replies are on that shard too.
- Time is the Redis server's (`TIME` inside the scripts): a SIGKILLed
  holder's lease expires whatever the clocks of the machines.
- `"lost"`: this client remembers the holders it registered; a holder it
  knows that Redis does not (and did not sweep) means Redis lost its state
  (a restart without persistence, FLUSHALL, `flush()`).
- A sweep first moves each dead holder's connections, with the `order`
  each disconnect must carry (the `next` of the connection's ordering state,
  read in the same script, so an `enforce_ordering` consumer runs it), into
  a per-shard "sweeping" hash; then each disconnect is deleted from there
  and pushed in one script. A sweeper killed between the two steps leaves
  them for the next sweep: each disconnect is sent once.
- Disconnects are pushed without a capacity check (they are bounded by the
  number of connections). When the disconnect's queue lives on another
  shard than the holder (several Redis servers), the delete and the push
  are two round trips: a process killed between them loses that one.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import names
from . import framing
from .keys import split
from .scripts import (
    LEASE_HOLDERS,
    LEASE_RELEASE,
    LEASE_RENEW,
    LEASE_SWEEP,
    SEND,
    SWEEP_SEND,
    SWEEPER_ELECT,
    SWEEPER_RESIGN,
)

logger = logging.getLogger("channels_core.layers.redis")

_UNCAPPED = 2**50
_HOLDERS_PER_SWEEP = 100
_SWEEP_BATCH = 500
_MIN_CONN_TTL = 3600


class RedisLeases:
    """Mixin for `RedisChannelLayer`: the `LeasesExtension` methods (list "leases" in `extensions`)."""

    last_sweep: dict[str, int]
    """Disconnects sent by the last `lease_sweep` call, per holder swept (or still being finished)."""

    def _lease_known(self) -> set[str]:
        known = self.__dict__.get("_lease_known_holders")
        if known is None:
            known = self.__dict__["_lease_known_holders"] = set()
        return known

    def _lease_place(self, holder: str) -> tuple[Any, list[bytes]]:
        names.validate_channel_name(holder)
        keys = self.keys  # type: ignore[attr-defined]
        index = keys.lease_shard(holder)
        expiry, info, swept, _ = keys.lease_keys(index)
        return self.shards[index], [expiry, info, swept, keys.lease_conn_key(holder)]  # type: ignore[attr-defined]

    def _conn_ttl(self) -> int:
        return max(self._group_ttl, _MIN_CONN_TTL)  # type: ignore[attr-defined]

    def lease_renew(self, holder: str, ttl: float, info: dict | None = None) -> str:
        """Create or extend `holder`'s lease: `"held"`, `"swept"` or `"lost"` (see the contract)."""
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, not {ttl!r}")
        shard, keys = self._lease_place(holder)
        known = self._lease_known()
        payload = self.serializer.dumps(info or {})  # type: ignore[attr-defined]
        args = (holder, max(1, int(ttl * 1000)), payload, "1" if holder in known else "0", self._conn_ttl())
        state = shard.evalsha(LEASE_RENEW, keys, args)
        known.add(holder)
        return state.decode("ascii") if isinstance(state, bytes) else state

    def lease_track(self, holder: str, reply_channel: str, channel: str, message: dict) -> None:
        """Record `reply_channel` under `holder` with the disconnect (`message` on `channel`) it ends with."""
        shard, keys = self._lease_place(holder)
        names.validate_channel_name(reply_channel)
        names.validate_channel_name(channel)
        entry = channel.encode("ascii") + b"\n" + self.serializer.dumps(message)  # type: ignore[attr-defined]
        shard.pipeline([("HSET", keys[3], reply_channel, entry), ("EXPIRE", keys[3], self._conn_ttl())])

    def lease_release(self, holder: str, reply_channel: str, channel: str, message: dict) -> bool:
        """Forget `reply_channel` and, if it was still tracked, send `message` on `channel` (uncapped)."""
        shard, keys = self._lease_place(holder)
        names.validate_channel_name(reply_channel)
        names.validate_channel_name(channel)
        payload = self.serializer.dumps(message)  # type: ignore[attr-defined]
        target = self.keys.send_target(channel)  # type: ignore[attr-defined]
        element = framing.unstamped(split(channel)[1], payload)
        local = target.shard == shard.index
        release_keys = [keys[3], target.keys[0]] if local else [keys[3]]
        args = (reply_channel, self._expiry_ms, self._queue_ttl, element)  # type: ignore[attr-defined]
        if not shard.evalsha(LEASE_RELEASE, release_keys, args):
            return False
        if not local:
            self._push_uncapped(channel, [element])
        return True

    def lease_end(self, holder: str) -> None:
        """Drop `holder`'s lease and its connections, sending nothing (a clean exit); resign its election."""
        shard, keys = self._lease_place(holder)
        expiry, info, swept, conns = keys
        shard.pipeline([("DEL", conns), ("ZREM", expiry, holder), ("HDEL", info, holder), ("ZREM", swept, holder)])
        # A sweeper that stops hands the election over at once instead of after its ttl.
        self.shards[0].evalsha(SWEEPER_RESIGN, [self.keys.election_key()], (holder,))  # type: ignore[attr-defined]
        self._lease_known().discard(holder)

    def lease_connections(self, holder: str) -> list[str]:
        """The reply channels `holder` tracks now."""
        shard, keys = self._lease_place(holder)
        return [name.decode("ascii") for name in shard.execute("HKEYS", keys[3])]

    def lease_holders(self) -> dict[str, dict]:
        """The live holders on every shard and their `info`."""
        out: dict[str, dict] = {}
        calls = [(shard, list(self.keys.lease_keys(shard.index)[:2]), ()) for shard in self.shards]  # type: ignore[attr-defined]
        for reply in self._evalsha_each(LEASE_HOLDERS, calls):  # type: ignore[attr-defined]
            for i in range(0, len(reply), 2):
                holder = reply[i].decode("ascii")
                try:
                    out[holder] = self.serializer.loads(reply[i + 1]) if reply[i + 1] else {}  # type: ignore[attr-defined]
                except Exception:  # another deployment's keys, or garbage: the holder is still alive
                    out[holder] = {}
        return out

    def lease_sweep(self, sweeper: str, ttl: float) -> list[str]:
        """If `sweeper` holds (or takes) the election, send the disconnects of every expired lease, on every shard."""
        if not isinstance(sweeper, str) or not sweeper:
            raise TypeError(f"sweeper must be a non-empty str, not {sweeper!r}")
        self.last_sweep = {}
        election = self.keys.election_key()  # type: ignore[attr-defined]
        if not self.shards[0].evalsha(SWEEPER_ELECT, [election], (sweeper, max(1, int(ttl * 1000)))):  # type: ignore[attr-defined]
            return []
        swept: list[str] = []
        shards = self.shards  # type: ignore[attr-defined]
        keys = self.keys  # type: ignore[attr-defined]
        # One round trip per server for the whole sweep when nothing expired (48 buckets on a cluster).
        calls = [(s, list(keys.lease_keys(s.index)), (keys.shard_prefix(s.index), _HOLDERS_PER_SWEEP)) for s in shards]
        for dead in self._evalsha_each(LEASE_SWEEP, calls):  # type: ignore[attr-defined]
            for holder in dead:
                name = holder.decode("ascii")
                swept.append(name)
                self.last_sweep.setdefault(name, 0)
        waiting = self._execute_each([(s, ("HLEN", keys.lease_keys(s.index)[3])) for s in shards])  # type: ignore[attr-defined]
        for shard, count in zip(shards, waiting, strict=True):
            if count:
                self._send_swept(shard)
        presence_sweep = getattr(self, "_presence_sweep", None)
        if presence_sweep is not None:
            presence_sweep()  # the swept servers' presence records and group memberships (see .presence)
        return swept

    def _send_swept(self, shard: Any) -> None:
        """Push every disconnect waiting in `shard`'s sweeping hash, each exactly once."""
        sweeping = self.keys.lease_keys(shard.index)[3]  # type: ignore[attr-defined]
        reply = shard.execute("HGETALL", sweeping)
        pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2], strict=False)
        by_channel: dict[str, list[tuple[bytes, bytes, str]]] = {}
        for field, value in pairs:
            holder = field.split(b"\n", 1)[0].decode("ascii", "replace")
            try:
                order, channel_bytes, payload = value.split(b"\n", 2)
                channel = channel_bytes.decode("ascii")
                message = self.serializer.loads(payload)  # type: ignore[attr-defined]
                if "order" in message:
                    message["order"] = int(order)
                element = framing.unstamped(split(channel)[1], self.serializer.dumps(message))  # type: ignore[attr-defined]
            except Exception as exc:
                logger.error("Dropped an unreadable swept disconnect of %s (%s: %s)", holder, type(exc).__name__, exc)
                shard.execute("HDEL", sweeping, field)
                continue
            by_channel.setdefault(channel, []).append((field, element, holder))
        for channel, items in by_channel.items():
            target = self.keys.send_target(channel)  # type: ignore[attr-defined]
            local = target.shard == shard.index
            for start in range(0, len(items), _SWEEP_BATCH):
                batch = items[start : start + _SWEEP_BATCH]
                args: list[Any] = [self._expiry_ms, self._queue_ttl]  # type: ignore[attr-defined]
                for field, element, _ in batch:
                    args += [field, element]
                keys = [sweeping, target.keys[0]] if local else [sweeping]
                taken = set(shard.evalsha(SWEEP_SEND, keys, args))
                sent = [(element, holder) for field, element, holder in batch if field in taken]
                if sent and not local:
                    self._push_uncapped(channel, [element for element, _ in sent])
                for _, holder in sent:
                    self.last_sweep[holder] = self.last_sweep.get(holder, 0) + 1

    def _push_uncapped(self, channel: str, elements: list[bytes]) -> None:
        """Push unstamped elements on `channel`'s shard, past its capacity (disconnects only)."""
        target = self.keys.send_target(channel)  # type: ignore[attr-defined]
        self.shards[target.shard].evalsha(  # type: ignore[attr-defined]
            SEND,
            target.keys,
            (self._expiry_ms, _UNCAPPED, self._queue_ttl, *elements),  # type: ignore[attr-defined]
        )
