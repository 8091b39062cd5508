"""Presence: who is in a group right now (the `presence` extension), the parts every layer shares.

A member joins a group with `presence_join(group, channel, user, info,
events)`: the channel is added to the group, as `group_add` does, and a
record is kept beside it: the user id, the time of the join (the layer's
clock) and an optional small `info` dict. `presence_members(group)` lists
the records as `Member`s; `presence_leave(group, channel)` is the inverse of
the join (the channel leaves the group and its record goes).

A member whose interface server died goes without anybody calling
`presence_leave`: the server's lease (`leases` extension) expires, and the
elected sweeper's `lease_sweep` removes that server's records and group
memberships in the same tick as it sends their disconnects. Until then,
`presence_members` already leaves out members whose server's lease has
expired.

With `events=True` the join and each leave of that member (an explicit
leave, or the sweep of its dead server) are sent to the group as a reply
message, `{"text": json}` (`event_message`), which a `WebSocketBridge`
delivers like any other. The joining channel is added to the group after
its join event went out and the leaving one removed before its leave event,
so a member never receives its own events.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple

UserId = int | str | None


class PresenceNotSupported(NotImplementedError):
    """The channel layer does not offer the `presence` extension (RabbitMQ, or an outside layer)."""


class Member(NamedTuple):
    """One member of a group's presence."""

    channel: str
    """The member's reply channel (keep it on the server: it is the address of the connection)."""
    user: UserId
    """The user id recorded at the join (None for an anonymous member)."""
    joined: float
    """When it joined, unix time in seconds, on the layer's clock (the Redis server's for Redis)."""
    info: dict | None
    """The `info` dict given at the join, or None."""

    @property
    def id(self) -> str:
        """A short id of the member, the one its join and leave events carry (not the reply channel)."""
        return member_id(self.channel)


def member_id(channel: str) -> str:
    """An id for `channel` that other clients may see: a hash, since the reply channel itself is an address."""
    return hashlib.sha256(channel.encode("ascii")).hexdigest()[:16]


def check_join(user: Any, info: Any, events: bool) -> None:
    """Raise `TypeError` for a user id or `info` the layer cannot keep (or, with `events`, put in JSON)."""
    if user is not None and (isinstance(user, bool) or not isinstance(user, (int, str))):
        raise TypeError(f"presence user must be an int, a str or None, not {type(user).__name__}: {user!r}")
    if info is not None and not isinstance(info, dict):
        raise TypeError(f"presence info must be a dict or None, not {type(info).__name__}: {info!r}")
    if events:
        try:
            json.dumps(info)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"presence info must be JSON-serializable when events are on: {exc}") from None


def encode_record(serializer: Any, user: UserId, info: dict | None, events: bool) -> bytes:
    """What a layer keeps for one member (besides its join time): user, info and the events flag."""
    record: dict[str, Any] = {"u": user, "i": info}
    if events:
        record["e"] = 1
    return serializer.dumps(record)


def decode_record(serializer: Any, payload: bytes) -> dict:
    """The dict `encode_record` wrote (keys "u", "i" and, with events on, "e")."""
    record = serializer.loads(payload)
    return record if isinstance(record, dict) else {}


def event_message(kind: str, group: str, member: Member) -> dict:
    """The reply message a join (`kind` "join") or leave ("leave") event is sent to the group as."""
    body = {
        "presence": kind,
        "group": group,
        "member": member.id,
        "user": member.user,
        "info": member.info,
        "joined": member.joined,
    }
    return {"text": json.dumps(body, separators=(",", ":"))}
