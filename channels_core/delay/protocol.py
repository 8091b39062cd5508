"""The ASGI delay protocol: what an `asgi.delay` message must hold, checked with a reason."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from channels_core.layers import names

DELAY_CHANNEL = "asgi.delay"
# A hundred years: anything longer is a unit mistake, and would overflow datetime arithmetic.
MAX_DELAY_MS = 100 * 365 * 24 * 3600 * 1000


class InvalidDelayMessage(ValueError):
    """An `asgi.delay` message that cannot be scheduled; the text says why."""


class DelayRequest(NamedTuple):
    """A checked delay message: deliver `content` to `channel` after `delay` milliseconds."""

    channel: str
    delay: float
    content: dict


def parse_delay_message(message: Any) -> DelayRequest:
    """Check an `asgi.delay` message and return its parts, or raise InvalidDelayMessage with the reason.

    Keys: `channel` (a valid channel name), `delay` (milliseconds, a number
    from 0 up), `content` (the dict to deliver). Other keys are ignored.
    """
    if not isinstance(message, dict):
        raise InvalidDelayMessage(f"the message is a {type(message).__name__}, not a dict")
    missing = [key for key in ("channel", "delay", "content") if key not in message]
    if missing:
        raise InvalidDelayMessage(
            f"missing {', '.join(repr(k) for k in missing)}: an asgi.delay message needs "
            "'channel', 'delay' (milliseconds) and 'content'"
        )
    channel = message["channel"]
    if isinstance(channel, bytes):
        try:
            channel = channel.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidDelayMessage(f"'channel' {message['channel']!r} is not ASCII") from None
    try:
        names.validate_channel_name(channel)
    except TypeError as exc:
        raise InvalidDelayMessage(f"'channel': {exc}") from None
    delay = message["delay"]
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):
        raise InvalidDelayMessage(f"'delay' must be a number of milliseconds, not {type(delay).__name__} {delay!r}")
    if not math.isfinite(delay) or delay < 0:
        raise InvalidDelayMessage(f"'delay' must be a number of milliseconds from 0 up, not {delay!r}")
    if delay > MAX_DELAY_MS:
        raise InvalidDelayMessage(f"'delay' {delay!r} ms is more than a hundred years")
    content = message["content"]
    if not isinstance(content, dict):
        raise InvalidDelayMessage(f"'content' must be a dict, not {type(content).__name__}")
    return DelayRequest(channel, delay, content)
