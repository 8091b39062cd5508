"""What Channels 1.x kept in `channels.utils`, and the message lookup the consumer decorators share."""

from __future__ import annotations

from routing.names import name_that_thing

from .message import Message

__all__ = ["find_message", "name_that_thing"]


def find_message(args: tuple, decorator: str) -> Message:
    """The `Message` among a consumer's first two positional arguments (a function's, or a method's after `self`).

    Raises `ValueError("<decorator> called without Message instance")`
    otherwise, as Channels 1.x's `channel_session` did.
    """
    for arg in args[:2]:
        if isinstance(arg, Message):
            return arg
    raise ValueError(f"{decorator} called without Message instance")
