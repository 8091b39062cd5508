"""What every channel layer shares: configuration, name checks, the 1.x aliases."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence

from . import names
from .capacity import CapacityRules, Rule
from .errors import ChannelFull, LayerConnectionError, MessageTooLarge
from .serialization import Serializer


def random_suffix(length: int = 12) -> str:
    """A random, unguessable name part of `length` URL-safe characters (valid in channel names)."""
    return secrets.token_urlsafe(length)[:length]


class BaseChannelLayer:
    """Base for ASGI 1.0 channel layers (the contract is in `.contract`).

    Subclasses implement `send` and `receive`, then whichever extensions they
    offer, listing their names in `extensions`; this class holds
    configuration and the checks they share, and implements no extension:
    a method that only raised would make callers that ask
    `supports(layer, ...)` fail at the first use instead of going without.
    """

    ChannelFull = ChannelFull
    MessageTooLarge = MessageTooLarge
    LayerConnectionError = LayerConnectionError

    extensions: list[str] = []

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Rule, int] | None = None,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
    ) -> None:
        if expiry <= 0:
            raise ValueError(f"expiry must be positive, not {expiry!r}")
        if group_expiry <= 0:
            raise ValueError(f"group_expiry must be positive, not {group_expiry!r}")
        self.expiry = expiry
        self.group_expiry = group_expiry
        self.capacity = capacity
        self.capacity_rules = CapacityRules(capacity, channel_capacity)
        self.serializer = Serializer(symmetric_encryption_keys)

    # -- the 1.x names -------------------------------------------------------

    def receive(self, channels: Iterable[str], block: bool = False) -> tuple[str | None, dict | None]:
        raise NotImplementedError

    def receive_many(self, channels: Iterable[str], block: bool = False) -> tuple[str | None, dict | None]:
        """The pre-1.0 name of `receive`, still called by Channels 1.x code."""
        return self.receive(channels, block)

    def new_channel(self, pattern: str) -> str:
        """A new unique single-reader channel name: `pattern` must end with `?`."""
        if not isinstance(pattern, str) or not pattern.endswith("?"):
            raise TypeError(f"new_channel() needs a pattern ending in '?', not {pattern!r}")
        name = pattern + random_suffix()
        names.validate_channel_name(name)
        return name

    # -- the `ordering` extension's parked messages, as every backend stores them ----------

    def _park(self, channel: str, message: dict) -> bytes:
        """A message held back by `order_claim`, with the channel it came on, as the layer stores it."""
        return self.serializer.dumps({"channel": channel, "content": message})

    def _unpark(self, payload: bytes | None) -> tuple[str, dict] | None:
        """`(channel, message)` of a payload from `_park`, or None for none."""
        if not payload:
            return None
        parked = self.serializer.loads(payload)
        return parked["channel"], parked["content"]

    def get_capacity(self, channel: str) -> int:
        """The capacity of the queue `channel` is sent into."""
        return self.capacity_rules.get(names.list_name(channel))

    def close(self) -> None:
        """Release connections and wake any blocked receive; the layer is unusable after."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} expiry={self.expiry} capacity={self.capacity}>"
