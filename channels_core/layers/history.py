"""Group history: which groups keep one, positions, and the frames that carry them.

A group whose name matches a pattern of the layer's `group_history` setting
keeps its last messages (at most `size`, none older than `ttl` seconds).
Every message sent to it gets a `Position`: an `epoch` (a new one whenever
the history was lost: Redis restarted or flushed, the history expired) and
an `offset` (one more than the message before it in that epoch).

What a WebSocket client sees (docs/topics/history.md): a `{"text": T}`
message sent to a group with history is delivered as the text frame

    {"history": {"group": G, "epoch": E, "offset": N}, "text": T}

and a join with `since` puts, in the member's queue and before any live
message, the missed messages (in that shape) and then one status frame

    {"history": {"group": G, "epoch": E, "offset": N, "recovered": true|false}}

where `(E, N)` is the group's position at the join. Messages without
`"text"` (binary frames, other channels) are stored and replayed unchanged.
Groups without history deliver exactly what was sent, as in Channels 1.x.

The backends store the messages themselves; this module holds what they
share and imports nothing of theirs.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "LATEST",
    "HistoryNotSupported",
    "HistoryRule",
    "HistorySettings",
    "Position",
    "envelope",
    "frame_position",
    "parse_since",
    "status_message",
]

LATEST = "latest"
"""`since=LATEST`: join without replay, but be told the group's position (a client seen for the first time)."""

_EPOCH = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


class HistoryNotSupported(NotImplementedError):
    """This layer keeps no group history, so it cannot replay anything after a position."""


@dataclass(frozen=True)
class Position:
    """Where a message stands in its group's history: `epoch` and `offset` (the first message is offset 1)."""

    epoch: str
    offset: int

    def __post_init__(self) -> None:
        if not isinstance(self.epoch, str) or not _EPOCH.match(self.epoch):
            raise ValueError(f"a history epoch is 1 to 64 letters, digits, '-' or '_', not {self.epoch!r}")
        if not isinstance(self.offset, int) or isinstance(self.offset, bool) or self.offset < 0:
            raise ValueError(f"a history offset is an int >= 0, not {self.offset!r}")

    @classmethod
    def parse(cls, text: str) -> Position:
        """`"EPOCH:OFFSET"` (what `str()` gives and the bridge sends) to a Position; ValueError if malformed."""
        epoch, sep, offset = str(text).rpartition(":")
        if not sep or not offset.isdigit():
            raise ValueError(f"a history position is 'EPOCH:OFFSET', not {text!r}")
        return cls(epoch, int(offset))

    def __str__(self) -> str:
        return f"{self.epoch}:{self.offset}"


@dataclass(frozen=True)
class HistoryRule:
    """How much history the groups matching `pattern` keep."""

    pattern: str
    size: int
    ttl: float


class HistorySettings:
    """The `group_history` setting: `{pattern: {"size": N, "ttl": seconds}}`, first matching pattern wins.

    Patterns are shell globs (`fnmatch`, case-sensitive) over group names:
    `{"room-*": {"size": 1000, "ttl": 300}}`. Empty or None: no group keeps
    history (the default).
    """

    def __init__(self, config: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.rules: list[HistoryRule] = []
        for pattern, options in (config or {}).items():
            if not isinstance(pattern, str) or not isinstance(options, Mapping):
                raise ValueError(f"group_history maps a pattern to {{'size': N, 'ttl': seconds}}, not {pattern!r}")
            unknown = set(options) - {"size", "ttl"}
            if unknown:
                raise ValueError(f"group_history[{pattern!r}]: unknown keys {sorted(unknown)} (size, ttl)")
            size, ttl = options.get("size", 100), options.get("ttl", 300)
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise ValueError(f"group_history[{pattern!r}]['size'] must be an int >= 1, not {size!r}")
            if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or ttl < 1:
                raise ValueError(f"group_history[{pattern!r}]['ttl'] must be >= 1 second, not {ttl!r}")
            self.rules.append(HistoryRule(pattern, size, float(ttl)))
        self._cache: dict[str, HistoryRule | None] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def rule_for(self, group: str) -> HistoryRule | None:
        """The rule for `group`, or None when it keeps no history."""
        if not self.rules:
            return None
        try:
            return self._cache[group]
        except KeyError:
            pass
        rule = next((r for r in self.rules if fnmatch.fnmatchcase(group, r.pattern)), None)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[group] = rule
        return rule


def envelope(message: dict, group: str, epoch: str, offset: int) -> dict:
    """`message` as delivered from a group with history: its text wrapped with the position."""
    text = message.get("text")
    if not isinstance(text, str):
        return message
    wrapped = {"history": {"group": group, "epoch": epoch, "offset": offset}, "text": text}
    return {**message, "text": json.dumps(wrapped, separators=(",", ":"), ensure_ascii=False)}


def status_message(group: str, epoch: str, offset: int, recovered: bool) -> dict:
    """The frame a join with `since` ends its replay with: the group's position and whether nothing was lost."""
    status = {"group": group, "epoch": epoch, "offset": offset, "recovered": recovered}
    return {"text": json.dumps({"history": status}, separators=(",", ":"))}


def parse_since(query_string: str | bytes) -> dict[str, Position]:
    """The positions a client sent in its query string: `since=GROUP:EPOCH:OFFSET`, repeated.

    Malformed entries are ignored (the client then joins as a new one and is
    told `recovered: false`... or nothing to recover): a client cannot make a
    join fail.
    """
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    out: dict[str, Position] = {}
    for key, value in parse_qsl(query_string or "", keep_blank_values=False):
        if key != "since":
            continue
        group, sep, rest = value.partition(":")
        if not sep:
            continue
        try:
            out[group] = Position.parse(rest)
        except ValueError:
            continue
    return out


def check_since(since: Any) -> Position | str:
    """`since` as a join takes it: a Position, `"EPOCH:OFFSET"`, or LATEST."""
    if since == LATEST or isinstance(since, Position):
        return since
    if isinstance(since, str):
        return Position.parse(since)
    raise TypeError(f"since must be a Position, 'EPOCH:OFFSET' or {LATEST!r}, not {since!r}")


def frame_position(text: str) -> tuple[str, Position] | None:
    """`(group, position)` of a delivered history frame (a message or a status), else None.

    For transports that carry positions their own way (an SSE event id, read
    back as `Last-Event-ID` and turned into `since=GROUP:EPOCH:OFFSET`).
    """
    if not isinstance(text, str) or not text.startswith('{"history":'):
        return None
    try:
        history = json.loads(text)["history"]
        return history["group"], Position(history["epoch"], history["offset"])
    except (ValueError, KeyError, TypeError):
        return None
