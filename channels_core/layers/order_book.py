"""Per-connection ordering kept by the layer: the `ordering` extension.

A connection's messages carry `order` (0 for the connect, then 1, 2, ...).
Workers ask the layer, atomically, whether a message is the one its
connection waits for:

- `order_claim(reply_channel, order, channel, message, timeout, max_parked)`
  returns `RUN` (it is next: run it now), `PARKED` (a later one: stored in
  the layer until the gap fills), `STALE` (already past: a duplicate),
  `STUCK` (the gap has not moved for `timeout` seconds, or `max_parked`
  messages wait: the connection's ordering is given up and its state
  dropped) or `DEAD` (given up earlier).
- `order_advance(reply_channel, order)` marks `order` done and hands back the
  parked message that is next, `(channel, message)`, removing it from the
  layer: the caller runs it (and advances again). Nobody else can have it,
  so nothing spins and nothing is requeued.
- `order_forget(reply_channel)` drops the state (after the disconnect).

State lives beside the connection's reply channel and expires after
`group_expiry` (a socket's longest life), so it never piles up.

`OrderBook` is the in-memory implementation; the Redis layer runs the same
state machine as Lua scripts (`redis/scripts.py`: ORDER_CLAIM, ORDER_ADVANCE).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

RUN = "run"
PARKED = "parked"
STALE = "stale"
STUCK = "stuck"
DEAD = "dead"


@dataclass
class _Connection:
    next: int = 0
    waiting_since: float | None = None  # set while messages are parked and next has not moved
    parked: dict[int, Any] = field(default_factory=dict)
    dead: bool = False
    expires: float = 0.0


class OrderBook:
    """The ordering state of every connection, in one process (for the in-memory layer)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._connections: dict[str, _Connection] = {}

    def _get(self, key: str, now: float) -> _Connection:
        state = self._connections.get(key)
        if state is None or state.expires <= now:
            state = self._connections[key] = _Connection()
        state.expires = now + self.ttl
        return state

    def claim(self, key: str, order: int, payload: Any, timeout: float, max_parked: int) -> str:
        now = time.monotonic()
        with self._lock:
            state = self._get(key, now)
            if state.dead:
                return DEAD
            if order < state.next or order in state.parked:
                return STALE
            if order == state.next:
                return RUN
            stuck = state.waiting_since is not None and now - state.waiting_since > timeout
            if stuck or len(state.parked) >= max_parked:
                self._connections[key] = _Connection(dead=True, expires=now + self.ttl)
                return STUCK
            state.parked[order] = payload
            if state.waiting_since is None:
                state.waiting_since = now
            return PARKED

    def advance(self, key: str, order: int) -> Any:
        now = time.monotonic()
        with self._lock:
            state = self._get(key, now)
            if state.dead:
                return None
            state.next = max(state.next, order + 1)
            payload = state.parked.pop(state.next, None)
            state.waiting_since = now if state.parked or payload is not None else None
            return payload

    def next_order(self, key: str) -> int:
        """The order `key` waits for next (0 when it has no state): what a swept disconnect carries."""
        with self._lock:
            state = self._connections.get(key)
            return state.next if state is not None and state.expires > time.monotonic() else 0

    def forget(self, key: str) -> None:
        with self._lock:
            self._connections.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            now = time.monotonic()
            return sum(1 for state in self._connections.values() if state.expires > now)
