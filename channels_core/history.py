"""Resuming group streams in consumers: `Group(name).add(reply_channel, since=...)` and `@resume_groups`.

The layer side (positions, storage, the atomic join) is
`channels_core.layers.history` and each backend; this module is what
consumers call. See docs/topics/history.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from .layers.contract import supports
from .layers.history import LATEST, HistoryNotSupported, Position, parse_since

__all__ = ["LATEST", "HistoryNotSupported", "Position", "join_with_history", "resume_groups", "since_positions"]


def join_with_history(layer: Any, group: str, channel: str, since: Position | str) -> None:
    """`layer.history_join(...)`, or `HistoryNotSupported` naming the layer when it keeps no history."""
    if not supports(layer, "history"):
        raise HistoryNotSupported(
            f"{type(layer).__name__} keeps no group history, so Group.add(since=...) cannot replay "
            "what a client missed; use the Redis or in-memory layer (docs/topics/history.md)"
        )
    layer.history_join(group, channel, since)


def since_positions(message: Any) -> dict[str, Position]:
    """The last positions the client sent on connect (`?since=GROUP:EPOCH:OFFSET`, one per group)."""
    content = getattr(message, "content", message)
    return parse_since(content.get("query_string", b""))


def resume_groups(*groups: str | Callable[..., Iterable[str]]) -> Callable:
    """Decorate a `websocket.connect` consumer: after it returns, join `groups` resuming where the client was.

    Each of `groups` is a group name, a `str.format` pattern filled from the
    consumer's keyword arguments (`"room-{room}"`), or a callable
    `(message, **kwargs) -> names`. A group the client sent a position for
    is joined `since` it (replay, then `recovered`), any other `since=LATEST`
    (the client learns the position to resume from next time). A consumer
    that raises (`DenyConnection`, an error) joins nothing.
    """

    def decorate(consumer: Callable) -> Callable:
        @functools.wraps(consumer)
        def wrapper(message: Any, *args: Any, **kwargs: Any) -> Any:
            result = consumer(message, *args, **kwargs)
            positions = since_positions(message)
            for name in _names(groups, message, kwargs):
                # What Group(name).add(reply_channel, since=...) does (channel.py imports this module).
                join_with_history(message.channel_layer, name, message.reply_channel.name, positions.get(name, LATEST))
            return result

        return wrapper

    return decorate


def _names(groups: tuple, message: Any, kwargs: dict) -> list[str]:
    out: list[str] = []
    for group in groups:
        if callable(group):
            out.extend(group(message, **kwargs))
        else:
            out.append(group.format(**kwargs))
    return out
