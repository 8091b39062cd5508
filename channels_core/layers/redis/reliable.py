"""At-least-once channels on Redis (the `at_least_once` extension; settings in `..reliable`).

A send to an at-least-once channel queues the message as usual and rings
the queue's bell (`alo:bell:q`, one element per message waiting). A receive
first runs `ALO_TAKE` on each at-least-once queue it reads: one script that
returns expired deliveries to the queue, then moves messages into flight
with a deadline. When nothing is there it blocks, like any receive, on the
normal queues and on the bells at once, so a send wakes an idle reader at
once; a bell it pops only means "run ALO_TAKE again" (another reader may
have taken the message meanwhile, which is harmless). Normal channels are
read exactly as before: no script, no timer.

The one timer: a delivery whose worker died rings no bell, so a blocking
receive that reads at-least-once channels waits at most
`reliable.RECLAIM_INTERVAL` (1 s) at a time before it runs ALO_TAKE again.

Dead letters leave in two steps: ALO_TAKE (or ALO_NACK) keeps the message in
flight under a new delivery id, this client sends it to the dead-letter
channel and acks it. A client killed between the two leaves it in flight, and
the next ALO_TAKE after its deadline dead-letters it again: a dead letter can
be sent twice, never lost.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .. import names, reliable
from ..errors import LayerConnectionError
from . import framing
from .reliable_scripts import ALO_ACK, ALO_NACK, ALO_SEND, ALO_TAKE, ALO_TOUCH

logger = logging.getLogger("channels_core.layers.redis")

BELL_PREFIX = "alo:bell:"
"""Queue-name prefix of a bell list (':' is never in a channel name, so no channel can collide)."""

_MAX_CACHED_PLANS = 1000


class RedisAtLeastOnce:
    """Mixin for `RedisChannelLayer`: the `AtLeastOnceExtension` methods and the receive they need."""

    def _alo_setup(self, setting: Mapping[str, Any] | None) -> None:
        self._alo = reliable.Rules(setting)
        self._alo_bell = framing.unstamped("", self.serializer.dumps({}))  # type: ignore[attr-defined]
        self._alo_plans: dict[tuple[str, ...], Any] = {}

    # -- the extension -----------------------------------------------------------

    def at_least_once_policy(self, channel: str) -> reliable.Policy | None:
        """The `reliable.Policy` of `channel`, or None when it is delivered at most once."""
        return self._alo.get(names.list_name(channel))

    def ack(self, channel: str, delivery_id: int | str) -> bool:
        """The consumer is done with this delivery: remove it. False if it was no longer in flight."""
        shard, keys = self._alo_place(channel)
        return bool(shard.evalsha(ALO_ACK, [keys[2], keys[3]], (str(delivery_id),)))

    def touch(self, channel: str, delivery_ids: Iterable[int | str]) -> int:
        """Move the deadline of these deliveries `redeliver_after` seconds ahead; how many were still in flight."""
        ids = [str(i) for i in delivery_ids]
        if not ids:
            return 0
        policy = self._alo_policy(channel)
        shard, keys = self._alo_place(channel)
        return int(shard.evalsha(ALO_TOUCH, [keys[2]], (_ms(policy.redeliver_after), *ids)))

    def nack(self, channel: str, delivery_id: int | str, reason: str = "consumer failed") -> str:
        """The run failed: queue the message again now (`"requeued"`), or, delivered `max_deliveries`
        times, send it to the dead-letter channel (`"dead"`); `"gone"` if it was no longer in flight."""
        policy = self._alo_policy(channel)
        qname = names.list_name(channel)
        shard, keys = self._alo_place(channel)
        args = (str(delivery_id), policy.max_deliveries, _ttl(policy), _ms(policy.redeliver_after), self._alo_bell)
        reply = shard.evalsha(ALO_NACK, list(keys), args)
        if isinstance(reply, list):
            self._alo_dead(qname, policy, str(delivery_id), reply[1], reason)
            return "dead"
        return reply.decode("ascii") if isinstance(reply, bytes) else reply

    # -- sending and receiving (called by the layer) ------------------------------

    def _alo_send(self, qname: str, policy: reliable.Policy, payloads: list[bytes]) -> None:
        target = self.keys.send_target(qname)  # type: ignore[attr-defined]
        shard, keys = self._alo_place(qname)
        sent = shard.evalsha(
            ALO_SEND,
            [keys[0], keys[1], *target.keys[1:]],
            (_ms(policy.expiry), target.capacity, _ttl(policy), self._alo_bell, *(b"\n" + p for p in payloads)),
        )
        if sent < 0:
            raise self.ChannelFull(  # type: ignore[attr-defined]
                f"Channel {qname!r} is full: {-1 - sent} messages waiting, capacity {target.capacity}"
            )

    def _alo_receive(
        self, wanted: list[str], alo: list[str], limit: int, block: bool, timeout: float | None
    ) -> list[tuple[str, dict]]:
        """A receive on `wanted`, of which `alo` are at-least-once: ALO_TAKE, else block on queues and bells."""
        decoder = self.decoder  # type: ignore[attr-defined]
        closed = self._closed  # type: ignore[attr-defined]
        normal = [q for q in wanted if q not in alo]
        bells = [BELL_PREFIX + q for q in alo]
        decoder.waits.begin()
        wait = self.blocking_timeout if timeout is None else max(0.0, timeout)  # type: ignore[attr-defined]
        deadline = time.monotonic() + wait
        got: list[tuple[str, dict]] = []
        while True:
            try:
                if decoder and len(got) < limit:
                    got += _without_bells(decoder, decoder.take, normal + bells, limit - len(got))
                if len(got) < limit:
                    got += self._alo_take(alo, limit - len(got))
                if len(got) < limit and normal and (got or not block):
                    got += self._pop(self.keys.read_plan(normal), limit - len(got))  # type: ignore[attr-defined]
            except LayerConnectionError:
                if got:
                    return got
                if not block:
                    raise
                closed.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            if got or not block or closed.is_set():
                return got
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return got
            plan = self._alo_plan(normal, alo)
            pop = self._blocking_pop.pop  # type: ignore[attr-defined]
            got = _without_bells(decoder, pop, plan, limit, min(remaining, reliable.RECLAIM_INTERVAL))
            # Then round again: ALO_TAKE for what a bell announced, or for deliveries whose worker died.

    def _alo_statistics(self, qname: str, stats: dict[str, float]) -> None:
        """`channel_statistics` of an at-least-once queue: the age of its oldest waiting message under the
        channel's own expiry, and `messages_in_flight` (taken, not yet acked)."""
        policy = self._alo.get(qname)
        shard, keys = self._alo_place(qname)
        head, in_flight = shard.pipeline([("LINDEX", keys[0], 0), ("ZCARD", keys[2])])
        stats["messages_in_flight"] = in_flight
        stats["messages_max_age"] = 0.0
        if head:
            deadline = int(head[: framing.DEADLINE_DIGITS])
            stats["messages_max_age"] = max(0.0, (shard.now_ms() - (deadline - _ms(policy.expiry))) / 1000)

    def _alo_take(self, queues: list[str], limit: int) -> list[tuple[str, dict]]:
        out: list[tuple[str, dict]] = []
        order = random.sample(queues, len(queues)) if len(queues) > 1 else queues
        for qname in order:
            policy = self._alo.get(qname)
            shard, keys = self._alo_place(qname)
            args = (
                limit - len(out),
                _ms(policy.redeliver_after),
                policy.max_deliveries,
                _ttl(policy),
                "1" if policy.dead_letter else "0",
                self._alo_bell,
            )
            taken, dead, expired = shard.evalsha(ALO_TAKE, list(keys), args)
            for i in range(0, len(dead), 2):
                self._alo_dead(qname, policy, dead[i].decode("ascii"), dead[i + 1], "redelivered too often")
            if expired:
                logger.warning("%d messages on %s expired unread (at_least_once expiry)", expired, qname)
            now = shard.now_ms() if taken else 0
            for i in range(0, len(taken), 2):
                delivery_id = int(taken[i])
                decoded = self._alo_decode(qname, taken[i + 1])
                if decoded is None:
                    self.ack(qname, delivery_id)  # unreadable: redelivering it would fail the same way
                    continue
                deadline, count, message = decoded
                message[reliable.DELIVERY_KEY] = {"id": delivery_id, "count": count}
                self.decoder.waits.add((now - (deadline - _ms(policy.expiry))) / 1000)  # type: ignore[attr-defined]
                out.append((qname, message))
            if len(out) >= limit:
                break
        return out

    def _alo_dead(self, qname: str, policy: reliable.Policy, delivery_id: str, element: bytes, reason: str) -> None:
        """Send a message delivered `max_deliveries` times to the dead-letter channel, then ack it."""
        decoded = self._alo_decode(qname, element)
        count = decoded[1] if decoded else policy.max_deliveries
        if not policy.dead_letter or decoded is None:
            logger.error(
                "Dropped a message on %s after %d deliveries (%s)%s",
                qname,
                count,
                reason,
                "" if decoded else ": unreadable",
            )
        else:
            try:
                self.send(policy.dead_letter, reliable.dead_letter(decoded[2], qname, count, reason))  # type: ignore[attr-defined]
            except Exception as exc:
                # Left in flight: after redeliver_after the next ALO_TAKE hands it here again.
                logger.warning(
                    "Could not dead-letter a message of %s to %s (%s); retrying later", qname, policy.dead_letter, exc
                )
                return
            logger.warning(
                "Moved a message of %s to %s after %d deliveries (%s)", qname, policy.dead_letter, count, reason
            )
        if delivery_id:
            self.ack(qname, delivery_id)

    def _alo_decode(self, qname: str, element: bytes) -> tuple[int, int, dict] | None:
        """(deadline ms, deliveries, message) of an at-least-once element, or None (logged) if unreadable."""
        try:
            deadline, count, payload = framing.parse(element)
            message = self.serializer.loads(payload)  # type: ignore[attr-defined]
            if not isinstance(message, dict):
                raise TypeError(f"a {type(message).__name__}, not a dict")
            return deadline, int(count or b"0"), message
        except Exception as exc:
            self.decoder.drops.drop(qname, f"unreadable at-least-once element ({type(exc).__name__})")  # type: ignore[attr-defined]
            return None

    def _alo_policy(self, channel: str) -> reliable.Policy:
        policy = self._alo.get(names.list_name(channel))
        if policy is None:
            raise ValueError(f"{channel!r} is not an at-least-once channel (no at_least_once pattern matches it)")
        return policy

    def _alo_place(self, channel: str) -> tuple[Any, tuple[bytes, bytes, bytes, bytes]]:
        """The shard of an at-least-once queue and its keys: queue, bell, flight, data."""
        qname = names.list_name(channel)
        index = self.ring.get(qname)  # type: ignore[attr-defined]
        on = self.keys.key_on  # type: ignore[attr-defined]
        keys = (
            on(index, qname),
            on(index, BELL_PREFIX + qname),
            on(index, "alo:flight:" + qname),
            on(index, "alo:data:" + qname),
        )
        return self.shards[index], keys  # type: ignore[attr-defined]

    def _alo_plan(self, normal: list[str], alo: list[str]) -> Any:
        """The blocking read's plan: the normal queues plus each at-least-once queue's bell, per shard."""
        cache_key = (*normal, "", *alo)
        plan = self._alo_plans.get(cache_key)
        if plan is None:
            per_shard: dict[int, list[bytes]] = {}
            for shard, keys in self.keys.read_plan(normal) if normal else []:  # type: ignore[attr-defined]
                per_shard.setdefault(shard.index, []).extend(keys)
            for qname in alo:
                index = self.ring.get(qname)  # type: ignore[attr-defined]
                per_shard.setdefault(index, []).append(self.keys.key_on(index, BELL_PREFIX + qname))  # type: ignore[attr-defined]
            plan = [(self.shards[i], keys) for i, keys in sorted(per_shard.items())]  # type: ignore[attr-defined]
            if len(self._alo_plans) > _MAX_CACHED_PLANS:
                self._alo_plans.clear()
            self._alo_plans[cache_key] = plan
        return plan


def _bell(name: str) -> bool:
    return name.startswith(BELL_PREFIX)


def _without_bells(decoder: Any, read: Callable[..., list[tuple[str, dict]]], *args: Any) -> list[tuple[str, dict]]:
    """The messages `read(*args)` returns, bells left out, and their queue waits kept in step with them."""
    before = decoder.waits.last()
    got = read(*args)
    if not any(_bell(channel) for channel, _ in got):
        return got
    waits = decoder.waits.last()[len(before) :]
    kept = [(m, w) for m, w in zip(got, waits + [None] * (len(got) - len(waits)), strict=True) if not _bell(m[0])]
    decoder.waits.begin()
    for wait in before + [w for _, w in kept if w is not None]:
        decoder.waits.add(wait)
    return [m for m, _ in kept]


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _ttl(policy: reliable.Policy) -> int:
    """Seconds the queue's keys live without traffic: past any message's expiry and any delivery's deadline."""
    return math.ceil(2 * max(policy.expiry, policy.redeliver_after)) + 1
