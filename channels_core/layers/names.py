"""Channel and group name rules shared by every layer (ASGI 1.0)."""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_NAME_LENGTH = 100

_CHANNEL_RE = re.compile(r"[a-zA-Z\d\-_.]+([?!][a-zA-Z\d\-_.]*)?")
_GROUP_RE = re.compile(r"[a-zA-Z\d\-_.]+")


def _check(name: object, pattern: re.Pattern, kind: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a str, not {type(name).__name__}: {name!r}")
    if len(name) >= MAX_NAME_LENGTH:
        raise TypeError(f"{kind} name {name!r} is {len(name)} characters; the limit is {MAX_NAME_LENGTH - 1}")
    if not pattern.fullmatch(name):
        raise TypeError(
            f"{kind} name {name!r} is invalid: use ASCII letters, digits, '-', '_', '.'"
            + (" and at most one '?' or '!'" if kind == "Channel" else "")
        )
    return name


def validate_channel_name(name: object) -> str:
    """Return `name` if it is a valid channel name, else raise TypeError naming it."""
    return _check(name, _CHANNEL_RE, "Channel")


def validate_group_name(name: object) -> str:
    """Return `name` if it is a valid group name, else raise TypeError naming it."""
    return _check(name, _GROUP_RE, "Group")


def validate_receive_channels(channels: object) -> list[str]:
    """Validate the channel list of a receive call.

    A `!` name must end at the `!` (receivers listen on the whole process
    prefix); a `?` name must have its random part.
    """
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Iterable):
        raise TypeError(f"channels must be a list of channel names, not {channels!r}")
    names = list(channels)
    if not names:
        raise TypeError("channels must name at least one channel")
    for name in names:
        validate_channel_name(name)
        if "!" in name and not name.endswith("!"):
            raise TypeError(
                f"Cannot receive on {name!r}: receive on the process prefix {name[: name.index('!') + 1]!r} instead"
            )
        if name.endswith("?"):
            raise TypeError(f"Cannot receive on {name!r}: a '?' channel needs its random part from new_channel()")
    return names


def list_name(channel: str) -> str:
    """The queue a channel's messages live in: the `prefix!` part for process channels."""
    bang = channel.find("!")
    return channel if bang < 0 else channel[: bang + 1]


def is_process_channel(channel: str) -> bool:
    return "!" in channel


def is_single_reader_channel(channel: str) -> bool:
    return "?" in channel
