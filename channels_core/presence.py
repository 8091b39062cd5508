"""What `Group.join`, `Group.presence` and `Group.discard` do with the layer's `presence` extension.

`Group(name).join(message)` takes the reply channel and `message.user` (set
by `channel_session_user` and friends) from a consumer's message, so a
connect consumer records who joined in one line:

    @channel_session_user_from_http
    def ws_connect(message):
        message.reply_channel.send({"accept": True})
        Group("room").join(message, info={"name": message.user.username}, events=True)

The layer side (storage, the removal of a dead server's members, events) is
`channels_core.layers.presence`; the guarantees are in docs/topics/presence.md.
"""

from __future__ import annotations

from typing import Any

from .layers.contract import supports
from .layers.presence import Member, PresenceNotSupported

__all__ = ["Member", "PresenceNotSupported", "group_members", "join_group", "leave_group", "user_id"]


def user_id(user: Any) -> int | str | None:
    """The id presence records for `user`: itself for an int or str, a Django user's pk, None if anonymous."""
    if user is None or (isinstance(user, (int, str)) and not isinstance(user, bool)):
        return user
    if hasattr(user, "is_authenticated"):
        return user.pk if user.is_authenticated else None
    raise TypeError(f"presence user must be an int, a str, a Django user or None, not {type(user).__name__}")


def _layer_with_presence(layer: Any) -> Any:
    if not supports(layer, "presence"):
        inner = getattr(layer, "channel_layer", layer)  # a ChannelLayerWrapper names what it wraps
        raise PresenceNotSupported(
            f"{type(inner).__name__} does not support presence (the 'presence' layer extension): "
            "use the Redis layer (one server, shards, Sentinel or Cluster), the IPC layer or the in-memory layer; "
            "see docs/topics/presence.md"
        )
    return layer


def join_group(
    layer: Any, group: str, channel: Any, user: Any = None, info: dict | None = None, events: bool = False
) -> float:
    """`Group.join`: `channel` is a channel name, a `Channel` or a consumer's `Message`."""
    layer = _layer_with_presence(layer)
    if hasattr(channel, "reply_channel"):  # a Message: its reply channel, and its user unless one is given
        message = channel
        if message.reply_channel is None:
            raise ValueError("Group.join(message) needs a message with a reply_channel")
        if user is None:
            user = getattr(message, "user", None)
        channel = message.reply_channel
    name = getattr(channel, "name", channel)
    return layer.presence_join(group, name, user_id(user), info, events)


def leave_group(layer: Any, group: str, channel: str) -> None:
    """`Group.discard`: the membership goes, and on a layer with presence the record too."""
    if supports(layer, "presence"):
        layer.presence_leave(group, channel)
    else:
        layer.group_discard(group, channel)


def group_members(layer: Any, group: str) -> list[Member]:
    """`Group.presence`: the members, oldest join first."""
    return _layer_with_presence(layer).presence_members(group)
