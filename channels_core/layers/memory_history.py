"""Group history kept in a Python dict, for the in-memory layer (the caller holds its lock).

The same rules as the Redis streams (see `redis/history.py`): offsets count
from 1 in each epoch; an epoch ends when its history is gone (a flush, or no
message for `ttl` seconds); a join `since` a position gets every message
after it when the history still reaches back and the epoch is the same,
else `recovered = False` and nothing replayed.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .history import LATEST, HistoryRule, Position


def new_epoch() -> str:
    return secrets.token_hex(6)


@dataclass
class _GroupLog:
    epoch: str
    last: int = 0
    touched: float = 0.0
    entries: deque = field(default_factory=deque)  # (offset, sent_at, stored message)


@dataclass
class Recovery:
    """What a join `since` a position gets: the messages after it, and the group's position now."""

    replay: list[tuple[int, Any]]
    epoch: str
    offset: int
    recovered: bool


class MemoryHistory:
    """Per group: its epoch, its last offset and its messages, bounded by the rule's size and ttl."""

    def __init__(self) -> None:
        self._logs: dict[str, _GroupLog] = {}

    def _log(self, group: str, rule: HistoryRule, now: float) -> _GroupLog:
        log = self._logs.get(group)
        if log is None or now - log.touched > rule.ttl:
            log = self._logs[group] = _GroupLog(new_epoch(), touched=now)
        while log.entries and (len(log.entries) > rule.size or now - log.entries[0][1] > rule.ttl):
            log.entries.popleft()
        return log

    def append(self, group: str, rule: HistoryRule, stored: Any, now: float) -> tuple[str, int]:
        """Record one message sent to `group`; its (epoch, offset)."""
        log = self._log(group, rule, now)
        log.last += 1
        log.touched = now
        log.entries.append((log.last, now, stored))
        if len(log.entries) > rule.size:
            log.entries.popleft()
        return log.epoch, log.last

    def recover(self, group: str, rule: HistoryRule, since: Position | str, now: float) -> Recovery:
        """The messages after `since` (all of them, or none with `recovered=False`)."""
        log = self._log(group, rule, now)
        if since == LATEST:
            return Recovery([], log.epoch, log.last, True)
        assert isinstance(since, Position)
        if since.epoch != log.epoch or since.offset > log.last:
            return Recovery([], log.epoch, log.last, False)
        if since.offset == log.last:
            return Recovery([], log.epoch, log.last, True)
        if not log.entries or log.entries[0][0] > since.offset + 1:
            return Recovery([], log.epoch, log.last, False)
        replay = [(offset, stored) for offset, _, stored in log.entries if offset > since.offset]
        return Recovery(replay, log.epoch, log.last, True)

    def clear(self) -> None:
        self._logs.clear()
