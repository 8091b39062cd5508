"""`Channel` and `Group`: named destinations on a channel layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import DEFAULT_CHANNEL_LAYER
from .asgi import channel_layers
from .consumer_sends import pending_message_store
from .presence import group_members, join_group, leave_group

__all__ = ["DEFAULT_CHANNEL_LAYER", "Channel", "Group"]


class _Destination:
    """What `Channel` and `Group` share: a name on a channel layer, and sends held back while a consumer runs."""

    def __init__(self, name: str | bytes, alias: str = DEFAULT_CHANNEL_LAYER, channel_layer: Any = None) -> None:
        if isinstance(name, bytes):
            name = name.decode("ascii")
        self.name = name
        self.channel_layer = channel_layer if channel_layer is not None else channel_layers[alias]

    def _send(self, content: dict, immediately: bool, send_now: Callable[[str, dict], Any]) -> None:
        """`send_now(name, content)`, or, inside a consumer and not `immediately`, when the consumer finishes."""
        if immediately or not pending_message_store.active:
            send_now(self.name, content)
        else:
            pending_message_store.append(self, content)


class Channel(_Destination):
    """A channel by name; `send()` inside a consumer is buffered until the consumer ends."""

    def send(self, content: dict, immediately: bool = False) -> None:
        """Send `content`; inside a consumer it goes out when the consumer finishes unless `immediately`."""
        if not isinstance(content, dict):
            raise TypeError("You can only send dicts as content on channels.")
        self._send(content, immediately, self.channel_layer.send)

    def __str__(self) -> str:
        # A Message built without a channel (tests do) has Channel(None): str() must still be a str.
        return self.name if self.name is not None else ""

    def __repr__(self) -> str:
        return f"<Channel {self.name!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Channel) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class Group(_Destination):
    """A group of channels: add, discard, and send to all (buffered inside a consumer)."""

    def add(self, channel: Channel | str, since: Any = None) -> None:
        """Add `channel`; with `since` (a history `Position`, `"EPOCH:OFFSET"` or `"latest"`) also resume.

        With `since` the layer, in the same atomic step as the join, queues
        for `channel` every message of the group's history after `since`,
        then a status frame (`recovered: false` when that history is gone);
        see docs/topics/history.md. Raises `HistoryNotSupported` when the
        layer or the group keeps no history, rather than join without it.
        """
        name = channel.name if isinstance(channel, Channel) else channel
        if since is None:
            self.channel_layer.group_add(self.name, name)
            return
        from .history import join_with_history

        join_with_history(self.channel_layer, self.name, name, since)

    def discard(self, channel: Channel | str) -> None:
        """Remove `channel`; on a layer with presence its record goes too (and its leave event, if asked)."""
        leave_group(self.channel_layer, self.name, channel.name if isinstance(channel, Channel) else channel)

    def join(self, channel: Any, user: Any = None, info: dict | None = None, events: bool = False) -> float:
        """Add `channel` (or a consumer's `message`: its reply channel and `message.user`) with a presence record.

        `user` is an id (int or str) or a Django user (its pk; None when
        anonymous); `info` a small JSON-able dict. With `events` the join and
        this member's leave are sent to the group. Returns the join time.
        Raises `PresenceNotSupported` on a layer without presence. See
        docs/topics/presence.md.
        """
        return join_group(self.channel_layer, self.name, channel, user, info, events)

    def presence(self) -> list[Any]:
        """The members: `Member(channel, user, joined, info)` each, oldest join first (docs/topics/presence.md)."""
        return group_members(self.channel_layer, self.name)

    def channel_layer_members(self) -> list[str]:
        return list(self.channel_layer.group_channels(self.name))

    def send(self, content: dict, immediately: bool = False) -> None:
        """Send `content` to every member; inside a consumer it goes out when it finishes unless `immediately`."""
        if not isinstance(content, dict):
            # ValueError, not Channel.send's TypeError: Channels 1.x raised these two.
            raise ValueError("You can only send dicts as content on channels.")
        self._send(content, immediately, self.channel_layer.send_group)

    def __repr__(self) -> str:
        return f"<Group {self.name!r}>"
