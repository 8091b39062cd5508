"""At-least-once channels: the settings and the message fields every layer that offers them shares.

A layer built with `at_least_once={glob: {...}}` delivers the messages of
matching channels at least once instead of at most once (the `at_least_once`
extension, `contract.AtLeastOnceExtension`):

- a receive hands the message out and keeps it "in flight" under a delivery
  id, with a deadline `redeliver_after` seconds away;
- `ack(channel, delivery_id)` removes it (the runworker loop acks when the
  consumer returns); `touch` pushes the deadline back (the worker does that
  while the consumer runs, so a long job is not handed out twice);
- a delivery whose deadline passed (its worker died) goes back to the head
  of its queue, and the next receive hands it out again with its delivery
  count one higher; `nack` (the consumer raised) puts it at the tail now;
- a message delivered `max_deliveries` times and not acked goes to the
  `dead_letter` channel (or, without one, is dropped and logged).

The consumer sees the delivery in the message, under `DELIVERY_KEY`:
`{"id": <delivery id>, "count": <1 for the first delivery>}`
(`Message.delivery_count` reads it). A dead-lettered message carries
`DEAD_LETTER_KEY`: `{"channel": ..., "deliveries": n, "reason": ...}`.

Only normal channel names can be at-least-once: a `?` or `!` channel has one
reader, which is the process a redelivery could not reach once it died.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import names

DELIVERY_KEY = "__delivery__"
"""The message key holding `{"id": delivery id, "count": deliveries so far, this one included}`."""

DEAD_LETTER_KEY = "__dead_letter__"
"""The key a dead-lettered message carries: `{"channel", "deliveries", "reason"}`."""

DEFAULT_MAX_DELIVERIES = 5
DEFAULT_REDELIVER_AFTER = 30.0
DEFAULT_EXPIRY = 86400.0

RECLAIM_INTERVAL = 1.0
"""Longest wait of a blocking receive on at-least-once channels before it looks for expired deliveries
(the only timer these channels add; normal channels keep their purely blocking reads)."""


SOCKET_CHANNELS = (
    "http.request",
    "http.disconnect",
    "websocket.connect",
    "websocket.receive",
    "websocket.disconnect",
)
"""The interface server's channels: no `at_least_once` pattern may match them (a connection's messages
mean nothing once the process holding the connection is gone)."""


@dataclass(frozen=True)
class Policy:
    """How one at-least-once channel is delivered (the value of one `at_least_once` entry)."""

    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    """Deliveries before the message goes to `dead_letter`; 1 means never redelivered."""
    dead_letter: str | None = None
    """Channel that receives messages delivered `max_deliveries` times without an ack; None drops them (logged)."""
    redeliver_after: float = DEFAULT_REDELIVER_AFTER
    """Seconds a delivery stays in flight without an ack or a `touch` before it is handed out again."""
    expiry: float = DEFAULT_EXPIRY
    """Seconds a message may wait in the queue (not in flight) before it expires unread."""


_KNOWN = {"max_deliveries", "dead_letter", "redeliver_after", "expiry"}


def _policy(pattern: str, value: Any) -> Policy:
    where = f"at_least_once[{pattern!r}]"
    if value is True or value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a dict of settings (or True), not {value!r}")
    unknown = set(value) - _KNOWN
    if unknown:
        raise ValueError(f"{where}: unknown settings {sorted(unknown)}; known: {sorted(_KNOWN)}")
    policy = Policy(**value)
    if not isinstance(policy.max_deliveries, int) or isinstance(policy.max_deliveries, bool):
        raise ValueError(f"{where}['max_deliveries'] must be an int, not {policy.max_deliveries!r}")
    if policy.max_deliveries < 1:
        raise ValueError(f"{where}['max_deliveries'] must be at least 1, not {policy.max_deliveries!r}")
    for field in ("redeliver_after", "expiry"):
        number = getattr(policy, field)
        if not isinstance(number, (int, float)) or isinstance(number, bool) or number <= 0:
            raise ValueError(f"{where}[{field!r}] must be a positive number of seconds, not {number!r}")
    if policy.dead_letter is not None:
        try:
            names.validate_channel_name(policy.dead_letter)
        except TypeError as exc:
            raise ValueError(f"{where}['dead_letter']: {exc}") from None
        if not plain(policy.dead_letter):
            raise ValueError(f"{where}['dead_letter'] must be a normal channel name, not {policy.dead_letter!r}")
    return policy


def plain(channel: str) -> bool:
    """True for a normal channel name (no `?` or `!`): the only kind that can be at-least-once."""
    return "?" not in channel and "!" not in channel


class Rules:
    """Channel name -> `Policy` for the layer's `at_least_once` setting: globs, first match wins."""

    def __init__(self, setting: Mapping[str, Any] | None) -> None:
        if setting is not None and not isinstance(setting, Mapping):
            raise ValueError(f"at_least_once must be a dict of channel glob -> settings, not {setting!r}")
        self.rules: list[tuple[str, re.Pattern, Policy]] = []
        for pattern, value in (setting or {}).items():
            if not isinstance(pattern, str) or not pattern:
                raise ValueError(f"at_least_once keys must be channel name globs, not {pattern!r}")
            compiled = re.compile(fnmatch.translate(pattern))
            for socket_channel in SOCKET_CHANNELS:
                if compiled.match(socket_channel):
                    raise ValueError(
                        f"at_least_once[{pattern!r}] matches {socket_channel!r}: a connection's messages cannot be "
                        "redelivered once its process is gone; name your job channels more narrowly"
                    )
            self.rules.append((pattern, compiled, _policy(pattern, value)))
        self._cache: dict[str, Policy | None] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def get(self, channel: str) -> Policy | None:
        """The policy of `channel` (a queue name), or None when it is delivered at most once."""
        try:
            return self._cache[channel]
        except KeyError:
            pass
        found = None
        if plain(channel):
            for _, compiled, policy in self.rules:
                if compiled.match(channel):
                    found = policy
                    break
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[channel] = found
        return found


def delivery_of(message: Any) -> tuple[int | str, int] | None:
    """`(delivery id, count)` of a message received from an at-least-once channel, else None."""
    if not isinstance(message, dict):
        return None
    delivery = message.get(DELIVERY_KEY)
    if not isinstance(delivery, dict) or "id" not in delivery:
        return None
    return delivery["id"], int(delivery.get("count", 1))


def without_delivery(message: dict) -> dict:
    """A copy of `message` without its delivery field (to send it on: a requeue, a dead letter)."""
    return {k: v for k, v in message.items() if k != DELIVERY_KEY}


def dead_letter(message: dict, channel: str, deliveries: int, reason: str) -> dict:
    """What goes to the dead-letter channel: the message, without its delivery, saying where it came from."""
    out = without_delivery(message)
    out[DEAD_LETTER_KEY] = {"channel": channel, "deliveries": deliveries, "reason": reason}
    return out


def refuse(layer: str, setting: Any) -> None:
    """For layers without the extension: a clear error at construction when `at_least_once` is set."""
    if setting:
        raise ValueError(
            f"{layer} does not offer at-least-once channels (the at_least_once setting); "
            "use the Redis layer (or the in-memory one in tests). See docs/topics/background-work.md"
        )
