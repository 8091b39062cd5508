"""The channel layer contract (ASGI 1.0 layer API) as code.

A backend is written against these Protocols; callers ask `supports(layer,
"name")` before using an extension, never `hasattr` or `extensions` directly.
The sections map one to one onto DESIGN.md's "The channel layer contract":

- "send(channel, message)" and the exceptions that are attributes of the
  layer: `ChannelLayer.send`, `ChannelLayer.ChannelFull`,
  `ChannelLayer.MessageTooLarge` (the classes live in `.errors`).
- "receive(channels, block=False)" and its old name: `ChannelLayer.receive`,
  `ChannelLayer.receive_many`.
- "new_channel(pattern)": `ChannelLayer.new_channel`.
- "extensions lists what is supported": `ChannelLayer.extensions` and one
  Protocol per name in `EXTENSIONS`: `groups` (`GroupsExtension`), `flush`
  (`FlushExtension`), `statistics` (`StatisticsExtension`), `batch`
  (`BatchExtension`: `send_many`, `receive_batch`), `ordering`
  (`OrderingExtension`, described in `.order_book`) and the event-loop-friendly
  receive of the interface server, `event_receiver`
  (`EventReceiverExtension`, handing out an `EventReceiver`), process
  liveness, `leases` (`LeasesExtension`), and for operators `inspection`
  (`InspectionExtension`: queues and groups) and `queue_wait`
  (`QueueWaitExtension`: how long received messages waited), who is in a group, `presence`
  (`PresenceExtension`, see `.presence`), and group
  history with resume, `history` (`HistoryExtension`, see `.history`).
- "Names": checked by `.names` (`validate_channel_name`,
  `validate_group_name`, `validate_receive_channels`); `BaseChannelLayer`
  applies them.
- "Semantics" (at-most-once, FIFO, expiry, capacity, size limit, bytes vs
  str): behaviour no type can state; `tests/channels_core/layers/conformance.py` checks it,
  and every backend runs that suite unchanged.

A layer lists in `extensions` exactly the extensions it implements (the
conformance suite checks both directions). `BaseChannelLayer` implements
none of them: a backend built on it adds the methods and lists the names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

# -- the layer --------------------------------------------------------------


@runtime_checkable
class ChannelLayer(Protocol):
    """What every channel layer offers: synchronous methods, positional arguments, as in ASGI 1.0."""

    ChannelFull: type[Exception]
    """Raised by `send` when the channel is at capacity."""
    MessageTooLarge: type[Exception]
    """Raised by `send` when the message is over the size limit (1 MiB)."""
    extensions: Sequence[str]
    """The names (keys of `EXTENSIONS`) of the extensions this layer implements, no more, no fewer."""

    def send(self, channel: str, message: dict) -> None:
        """Queue `message` on `channel`; never blocks; raises `ChannelFull` or `MessageTooLarge`."""
        ...

    def receive(self, channels: Iterable[str], block: bool = False) -> tuple[str | None, dict | None]:
        """`(channel, message)` or `(None, None)`; `"prefix!"` returns the full name.

        A blocking receive returns `(None, None)` after a bounded internal
        timeout, so callers can shut down.
        """
        ...

    def receive_many(self, channels: Iterable[str], block: bool = False) -> tuple[str | None, dict | None]:
        """`receive` under its pre-1.0 name."""
        ...

    def new_channel(self, pattern: str) -> str:
        """A fresh unique name for `pattern`, which ends with `?`."""
        ...


# -- the extensions ---------------------------------------------------------


@runtime_checkable
class GroupsExtension(Protocol):
    """`groups`: named sets of channels, each membership lasting `group_expiry` seconds."""

    group_expiry: float

    def group_add(self, group: str, channel: str) -> None:
        """Add `channel` to `group` (idempotent)."""
        ...

    def group_discard(self, group: str, channel: str) -> None:
        """Remove `channel` from `group`; a no-op if it is not a member."""
        ...

    def group_channels(self, group: str) -> list[str]:
        """The live members of `group`."""
        ...

    def send_group(self, group: str, message: dict) -> None:
        """Send to every member; never raises `ChannelFull`: full members are skipped and counted."""
        ...


@runtime_checkable
class FlushExtension(Protocol):
    """`flush`: forget every message, group and counter of this layer."""

    def flush(self) -> None:
        """Empty the layer."""
        ...


@runtime_checkable
class StatisticsExtension(Protocol):
    """`statistics`: counters for operators."""

    def global_statistics(self) -> dict[str, int]:
        """`messages_count` and `channel_full_count` over the whole layer."""
        ...

    def channel_statistics(self, channel: str) -> dict[str, float]:
        """The counters of `channel`'s queue plus `messages_pending` and `messages_max_age` (seconds)."""
        ...


@runtime_checkable
class BatchExtension(Protocol):
    """`batch`: several messages per call, one round trip where the backend can."""

    def send_many(self, channel: str, messages: Sequence[dict]) -> None:
        """Send `messages` to `channel` in order, all or none: `ChannelFull` means none was sent."""
        ...

    def receive_batch(
        self, channels: Iterable[str], max_messages: int = 100, block: bool = False, timeout: float | None = None
    ) -> list[tuple[str, dict]]:
        """Up to `max_messages` waiting messages, maybe none.

        With `block=True`, waits for the first one; `timeout` (seconds)
        replaces the layer's own bound on that wait, 0 or less does not wait.
        """
        ...


@runtime_checkable
class OrderingExtension(Protocol):
    """`ordering`: per-connection order kept in the layer (the state machine is in `.order_book`)."""

    def order_claim(
        self, reply_channel: str, order: int, channel: str, message: dict, timeout: float, max_parked: int
    ) -> str:
        """`run`, `parked` (stored in the layer), `stale`, `stuck` or `dead`."""
        ...

    def order_advance(self, reply_channel: str, order: int) -> tuple[str, dict] | None:
        """Mark `order` done; the parked `(channel, message)` that is now next, taken out, or None."""
        ...

    def order_forget(self, reply_channel: str) -> None:
        """Drop the connection's ordering state."""
        ...


@runtime_checkable
class EventReceiver(Protocol):
    """A blocking read an event loop drives: watch `fileno()`, call `read()` when it is readable.

    Any connection problem raises `LayerConnectionError`: stop watching the
    descriptor, `close()`, and `start()` again later. Past `deadline`
    (`time.monotonic()`) a healthy connection would have answered: treat it
    as dead.
    """

    deadline: float

    def start(self) -> None:
        """Connect and send the first read."""
        ...

    def fileno(self) -> int:
        """The descriptor to watch for reading; -1 when not started."""
        ...

    def read(self) -> list[tuple[str, dict]]:
        """The messages that arrived (maybe none); the next read is already on its way."""
        ...

    def close(self) -> None:
        """Drop the connection."""
        ...


@runtime_checkable
class EventReceiverExtension(Protocol):
    """`event_receiver`: a receive that does not hold the interface server's event loop."""

    def event_receiver(self, channels: Iterable[str], max_messages: int = 100) -> EventReceiver:
        """An `EventReceiver` for `channels`; raises `NotImplementedError` when these channels cannot be read so."""
        ...


@runtime_checkable
class LeasesExtension(Protocol):
    """`leases`: process liveness kept in the layer (DESIGN.md "Liveness: leases").

    A *holder* (an interface server, a worker) renews a lease every third
    of its `ttl`. An interface server tracks each open connection under its
    lease with the disconnect message that connection must end with, and
    releases it when the connection closes: the release sends that
    disconnect only if the entry was still there. When a holder dies, its
    lease expires and one sweeper (elected among the callers of
    `lease_sweep`) sends the disconnect of every connection it still held
    and forgets them, so each connection ends with exactly one disconnect
    whether its server closed it or died. Disconnects sent by release or
    sweep are not subject to channel capacity: they are bounded by the
    number of connections, and dropping one leaves a ghost behind.
    """

    def lease_renew(self, holder: str, ttl: float, info: dict | None = None) -> str:
        """Create or extend `holder`'s lease for `ttl` seconds; `info` (small, msgpack-able) is kept with it.

        Returns `"held"` (renewed, or created the first time), `"swept"` (the
        lease had expired and a sweeper already sent the disconnects of its
        connections: close them without sending any; the lease is held
        again from now) or `"lost"` (the layer no longer knows this holder
        although it was registered before: the layer lost its state, for
        instance a Redis restart without persistence; its groups are gone
        too). The layer tells `"held"` from `"lost"` by remembering which
        holders it has seen, so the first call for a holder returns `"held"`.
        """
        ...

    def lease_track(self, holder: str, reply_channel: str, channel: str, message: dict) -> None:
        """Record that `holder` serves `reply_channel`, and that it ends with `message` on `channel`."""
        ...

    def lease_release(self, holder: str, reply_channel: str, channel: str, message: dict) -> bool:
        """Forget `reply_channel` and send `message` on `channel` if it was still tracked; True if sent."""
        ...

    def lease_end(self, holder: str) -> None:
        """A clean exit: drop `holder`'s lease and whatever it still tracks, sending nothing.

        If `holder` is also the elected sweeper (a sweeper's id is its holder
        name), the election is free at once.
        """
        ...

    def lease_connections(self, holder: str) -> list[str]:
        """The reply channels `holder` tracks now (after `"swept"` or `"lost"`: those tracked since)."""
        ...

    def lease_holders(self) -> dict[str, dict]:
        """The live holders and their `info`."""
        ...

    def lease_sweep(self, sweeper: str, ttl: float) -> list[str]:
        """Send the disconnects of every expired lease's connections, if `sweeper` is the elected sweeper.

        The election is itself a lease of `ttl` seconds in the layer: the
        first caller takes it and keeps it as long as it calls again within
        `ttl`. Returns the holders swept by this call (empty when another
        sweeper holds the election).
        """
        ...


@runtime_checkable
class InspectionExtension(Protocol):
    """`inspection`: what an operator needs to see (the status command, the admin operations page).

    Read-only and bounded: it never blocks senders or receivers for more
    than a few milliseconds at a time. On Redis it SCANs the keys under the
    layer's prefix (2,000 per step, server-side type filter), so it costs in
    proportion to them: about 8 steps per server at 10,000 sockets and 1,000
    groups.
    """

    def inspect_queues(self, limit: int = 1000) -> list[dict]:
        """The non-empty queues, fullest first, at most `limit`.

        Each is `{"channel": queue name ("http.request", "server!"),
        "pending": messages waiting, "oldest_age": seconds the oldest has
        waited (0.0 if unknown), "capacity": the queue's capacity}`.
        """
        ...

    def inspect_groups(self, limit: int = 1000) -> list[dict]:
        """The groups with live members, largest first, at most `limit`: `{"group": name, "members": count}`."""
        ...


@runtime_checkable
class QueueWaitExtension(Protocol):
    """`queue_wait`: how long received messages waited in their queue (the latency users feel)."""

    def last_queue_waits(self) -> list[float]:
        """Seconds each message returned by this thread's last `receive`/`receive_batch` waited, in order.

        Measured from its send to its receive, on the layer's clock (the
        Redis server's for Redis); empty after a receive that returned nothing.
        """
        ...


@runtime_checkable
class HistoryExtension(Protocol):
    """`history`: groups that keep their last messages, and joins that replay them (see `.history`).

    `send_group` to a group matching a `group_history` pattern gives the
    message a position and keeps it; `history_join` adds a member and, in
    the same atomic step, queues for it every kept message after `since`
    and a status frame (or `recovered: false` when that history is gone).
    """

    history_settings: Any

    def history_join(self, group: str, channel: str, since: Any) -> None:
        """`group_add`, plus the replay after `since` (a `history.Position` or `history.LATEST`)."""
        ...


@runtime_checkable
class AtLeastOnceExtension(Protocol):
    """`at_least_once`: channels whose messages stay until acked (see `.reliable`).

    Channels matching the layer's `at_least_once` patterns hand each message
    out with `reliable.DELIVERY_KEY` (`{"id", "count"}`) and keep it in flight
    until `ack`; a delivery not acked (nor touched) within `redeliver_after`
    seconds is handed out again, and after `max_deliveries` it goes to the
    dead-letter channel. Other channels keep the at-most-once contract.
    """

    def at_least_once_policy(self, channel: str) -> Any:
        """The `reliable.Policy` of `channel`, or None when it is delivered at most once."""
        ...

    def ack(self, channel: str, delivery_id: Any) -> bool:
        """Done with this delivery: remove it. False if it was no longer in flight (redelivered or acked)."""
        ...

    def touch(self, channel: str, delivery_ids: Iterable[Any]) -> int:
        """Still working on these deliveries: move their deadlines ahead; how many were still in flight."""
        ...

    def nack(self, channel: str, delivery_id: Any, reason: str = "consumer failed") -> str:
        """The run failed: `"requeued"` (tail of the queue), `"dead"` (dead-lettered) or `"gone"`."""
        ...


@runtime_checkable
class PresenceExtension(Protocol):
    """`presence`: who is in a group, with user id, join time and info (see `.presence`).

    A join adds the channel to the group (as `group_add`) and keeps a record
    beside it; a leave removes both. Members of an interface server whose
    lease expired are left out of `presence_members`, and the elected
    sweeper's `lease_sweep` removes them (records and group memberships) and
    sends their leave events. With `events=True` the join and the leave of
    that member are sent to the group (`.presence.event_message`); a member
    never receives its own.
    """

    def presence_join(
        self, group: str, channel: str, user: int | str | None = None, info: dict | None = None, events: bool = False
    ) -> float:
        """Add `channel` to `group` with its record; the join time (unix seconds, the layer's clock)."""
        ...

    def presence_leave(self, group: str, channel: str) -> bool:
        """Remove `channel` from `group` and its record; True if it had a record."""
        ...

    def presence_members(self, group: str) -> list[Any]:
        """The members (`.presence.Member`: channel, user, joined, info), oldest join first."""
        ...


EXTENSIONS: dict[str, type] = {
    "groups": GroupsExtension,
    "flush": FlushExtension,
    "statistics": StatisticsExtension,
    "batch": BatchExtension,
    "ordering": OrderingExtension,
    "event_receiver": EventReceiverExtension,
    "leases": LeasesExtension,
    "inspection": InspectionExtension,
    "queue_wait": QueueWaitExtension,
    "presence": PresenceExtension,
    "at_least_once": AtLeastOnceExtension,
    "history": HistoryExtension,
}
"""Every extension name a layer may list, and the Protocol that name promises."""


def members(protocol: type) -> tuple[str, ...]:
    """The public attributes and methods `protocol` requires."""
    names = [name for name in getattr(protocol, "__annotations__", {}) if not name.startswith("_")]
    names += [name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")]
    return tuple(names)


def implements(layer: Any, name: str) -> bool:
    """True if `layer` has every member of extension `name` (whether or not it lists it).

    Looked up with `getattr`, so a wrapper that delegates by `__getattr__`
    (`ChannelLayerWrapper`) counts as what it wraps.
    """
    protocol = _protocol(name)
    return all(
        callable(getattr(layer, member, None)) if callable(getattr(protocol, member, None)) else hasattr(layer, member)
        for member in members(protocol)
    )


def supports(layer: Any, name: str) -> bool:
    """True if `layer` lists extension `name` in `extensions` and implements it.

    `name` is a key of `EXTENSIONS`; any other raises `ValueError`, so a
    mistyped name fails loudly instead of quietly reading False.
    """
    _protocol(name)
    return name in (getattr(layer, "extensions", None) or ()) and implements(layer, name)


def _protocol(name: str) -> type:
    try:
        return EXTENSIONS[name]
    except KeyError:
        raise ValueError(f"unknown layer extension {name!r}; known: {', '.join(EXTENSIONS)}") from None
