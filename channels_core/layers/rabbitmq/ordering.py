"""The `ordering` extension on RabbitMQ: `.order_book`'s state machine, one locked state queue per connection.

AMQP has no atomic read-modify-write, so each connection's state is one
message in the queue `<prefix>#o:<reply channel>` (`x-expires` =
`group_expiry`, renewed by every use), changed only under the connection's
lock: the exclusive queue `<prefix>#olock:<reply channel>`, which one AMQP
connection at a time can declare and the broker deletes if its holder's
connection dies. A claim or an advance is: take the lock, declare the state
queue, get the state (unacknowledged), publish the new one (confirmed), ack
the old one, drop the lock: five round trips, where Redis runs one script.
Threads of one process take turns under the layer's publisher lock; other
processes that find the lock taken retry after a short, growing sleep.

A process that dies between acking the old state and publishing the new one
(the order matters: the other way round, a requeued old state would come
back ahead of the new) loses the connection's state: its later messages
park until the gap times out (`stuck`), and the connection is closed, which
is what `enforce_ordering` does with a gap it cannot fill.

Times are wall-clock (several machines share the state), so `timeout`
assumes their clocks agree to well under it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgpack
import pika.exceptions as pexc

from ..order_book import DEAD, PARKED, RUN, STALE, STUCK
from .groups import ACCESS_REFUSED, GROUP_REGISTRY, ORDER_STATE, RESOURCE_LOCKED, record_arguments

STATE = ORDER_STATE
LOCK = "#olock:"
BUSY = object()
"""What `OrderStates.locked` returns when another process holds the connection's lock."""


def _fresh() -> dict:
    return {"next": 0, "since": None, "parked": {}, "dead": False}


def claim(state: dict, order: int, payload: bytes, timeout: float, max_parked: int, now: float) -> tuple[str, bool]:
    """`OrderBook.claim` on `state` (changed in place); `(answer, changed)`."""
    if state["dead"]:
        return DEAD, False
    if order < state["next"] or order in state["parked"]:
        return STALE, False
    if order == state["next"]:
        return RUN, False
    since = state["since"]
    if (since is not None and now - since > timeout) or len(state["parked"]) >= max_parked:
        state.clear()
        state.update(_fresh(), dead=True)
        return STUCK, True
    state["parked"][order] = payload
    if since is None:
        state["since"] = now
    return PARKED, True


def advance(state: dict, order: int, now: float) -> tuple[bytes | None, bool]:
    """`OrderBook.advance` on `state` (changed in place); `(the parked payload that is next, changed)`."""
    if state["dead"]:
        return None, False
    before = (state["next"], state["since"], len(state["parked"]))
    state["next"] = max(state["next"], order + 1)
    payload = state["parked"].pop(state["next"], None)
    state["since"] = now if state["parked"] or payload is not None else None
    return payload, (state["next"], state["since"], len(state["parked"])) != before


class OrderStates:
    """Runs one step of the state machine under a connection's lock, on the publisher's connection."""

    def __init__(self, prefix: str, group_expiry: float) -> None:
        self.prefix = prefix
        self.group_expiry = group_expiry

    def locked(self, side, reply_channel: str, step: Callable[[dict | None], tuple[Any, dict | None, bool]]):
        """`step(state)` -> `(result, new state or None to forget it, changed)`; `BUSY` if another holds the lock.

        `side` is a confirm-mode channel of its own (the broker closes it on a
        refused lock).
        """
        lock = self.prefix + LOCK + reply_channel
        try:
            side.queue_declare(lock, exclusive=True)
        except pexc.ChannelClosedByBroker as exc:
            if exc.reply_code in (RESOURCE_LOCKED, ACCESS_REFUSED):
                return BUSY
            raise
        try:
            queue = self.prefix + STATE + reply_channel
            side.queue_declare(queue, durable=False, arguments=record_arguments(self.group_expiry))
            method, _, body = side.basic_get(queue, auto_ack=False)
            state = msgpack.unpackb(body, raw=False, strict_map_key=False) if method is not None else None
            result, new_state, changed = step(state)
            if new_state is None:
                side.queue_delete(queue)
            elif changed or state is None:
                if method is not None:
                    side.basic_ack(method.delivery_tag)
                elif state is None:
                    registry = self.prefix + GROUP_REGISTRY  # how flush finds it
                    side.queue_declare(registry, durable=False, arguments=record_arguments(self.group_expiry))
                    side.basic_publish("", registry, queue.encode("utf8"))
                side.basic_publish("", queue, msgpack.packb(new_state, use_bin_type=True))
            elif method is not None:
                side.basic_nack(method.delivery_tag, requeue=True)
            return result
        finally:
            if side.is_open:
                side.queue_delete(lock)

    @staticmethod
    def claim_step(order: int, payload: bytes, timeout: float, max_parked: int):
        def step(state):
            state = state or _fresh()
            answer, changed = claim(state, order, payload, timeout, max_parked, time.time())
            return answer, state, changed

        return step

    @staticmethod
    def advance_step(order: int):
        def step(state):
            state = state or _fresh()
            payload, changed = advance(state, order, time.time())
            return payload, state, changed

        return step

    @staticmethod
    def forget_step(state):
        return None, None, True
