"""A blocking pop on every shard at once: a message on any shard reaches an idle reader at once.

One shard is one BLPOP (or BLMPOP). Several shards each get one; the first
reply wins and the others are cancelled with CLIENT UNBLOCK. A cancel can
race with a message arriving: what such a read popped anyway is kept in the
`Decoder`'s local buffer for the next receive, never dropped. During an
outage the pop retries with backoff until its own deadline instead of
raising, so a worker never dies of one.
"""

from __future__ import annotations

import random
import threading
import time

from ..errors import LayerConnectionError
from .connection import PendingPop, Shard, wait_any
from .decoding import Decoder

_MIN_BACKOFF = 0.05
_MAX_BACKOFF = 1.0
# A server answers a blocking pop within its timeout plus its 100 ms timer tick; allow for a slow network.
_REPLY_GRACE = 2.0

Plan = list[tuple[Shard, list[bytes]]]
Popped = tuple[bytes, list[bytes], Shard]


class BlockingPop:
    """Blocking reads of one layer; `closed` set wakes them (they return within one blocking read)."""

    def __init__(self, decoder: Decoder, blocking_timeout: float, closed: threading.Event) -> None:
        self.decoder = decoder
        self.blocking_timeout = blocking_timeout
        self.closed = closed

    def pop(self, plan: Plan, limit: int, timeout: float | None = None) -> list[tuple[str, dict]]:
        """Up to `limit` messages from the keys of `plan`, waiting up to `timeout` (None: `blocking_timeout`).

        With `timeout`, the wait ends to the millisecond; otherwise Redis ends
        it on its own timer tick.
        """
        deadline = time.monotonic() + (self.blocking_timeout if timeout is None else timeout)
        backoff = _MIN_BACKOFF
        while not self.closed.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                for shard, _ in plan:
                    if shard.clock_offset_ms is None:
                        shard.handshake()
                if timeout is not None:
                    popped = self._pop_many(plan, remaining, limit, exact=True)
                elif len(plan) == 1:
                    popped = self._pop_one(plan[0], remaining, limit)
                else:
                    popped = self._pop_many(plan, remaining, limit)
            except LayerConnectionError:
                self.closed.wait(min(backoff, max(remaining, 0)))
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            if popped is None:
                continue
            key, elements, shard = popped
            got = self.decoder.unpack_all(key, elements, shard, limit)
            if got:
                return got
        return []

    def _pop_one(self, shard_keys: tuple[Shard, list[bytes]], timeout: float, count: int) -> Popped | None:
        shard, keys = shard_keys
        if len(keys) > 1:
            keys = random.sample(keys, len(keys))
        pending = PendingPop(shard, keys, timeout, need_id=False, count=count)
        if not pending.wait(timeout + _REPLY_GRACE):
            pending.abandon()
            return None
        reply = pending.result()
        return (reply[0], reply[1], shard) if reply else None

    def _pop_many(self, plan: Plan, timeout: float, count: int, exact: bool = False) -> Popped | None:
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
        end = time.monotonic() + timeout + (0.0 if exact else _REPLY_GRACE)
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
                        self.decoder.stash(reply[0], reply[1], p.shard)
        finally:
            for p in pending:
                reply = _cancel(p)
                if reply and winner is None:
                    winner = (reply[0], reply[1], p.shard)
                elif reply:
                    self.decoder.stash(reply[0], reply[1], p.shard)
        if winner is None and error is not None:
            raise error
        return winner


def _cancel(pending: PendingPop) -> tuple[bytes, list[bytes]] | None:
    """Unblock a pending pop and return what it popped before the unblock landed, if anything."""
    try:
        pending.shard.execute("CLIENT", "UNBLOCK", pending.client_id)
    except LayerConnectionError:
        pending.abandon()
        return None
    if not pending.wait(_REPLY_GRACE):
        pending.abandon()
        return None
    try:
        return pending.result()
    except LayerConnectionError:
        return None  # result() already dropped the connection
