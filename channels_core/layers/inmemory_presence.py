"""The `presence` extension of the in-memory layer (see `.presence` for the semantics).

Records live in a dict beside the groups, under the layer's lock. A member
whose channel is a "server!" channel of a holder whose lease expired is left
out of `presence_members`; `lease_sweep` calls `_presence_sweep`, which
removes the records of swept holders with their group memberships and sends
their leave events, as the Redis layer does.
"""

from __future__ import annotations

import time
from typing import Any

from . import names
from .presence import Member, check_join, event_message


class InMemoryPresence:
    """Mixin for `InMemoryChannelLayer`: the `PresenceExtension` methods (list "presence" in `extensions`)."""

    def _presence_records(self) -> dict[str, dict[str, tuple[Member, bool]]]:
        """group -> channel -> (member, events); created on first use, emptied by `flush`."""
        records = self.__dict__.get("_presence")
        if records is None:
            records = self.__dict__["_presence"] = {}
        return records

    def presence_join(
        self, group: str, channel: str, user: int | str | None = None, info: dict | None = None, events: bool = False
    ) -> float:
        """Add `channel` to `group` with its presence record; the join time (unix seconds)."""
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        check_join(user, info, events)
        # A copy through the serializer, as a send does: later changes to `info` change nothing.
        info = self.serializer.loads(self.serializer.dumps(info)) if info is not None else None  # type: ignore[attr-defined]
        member = Member(channel, user, time.time(), info)
        with self._cond:  # type: ignore[attr-defined]
            self._presence_records().setdefault(group, {})[channel] = (member, bool(events))
        if events:
            self.send_group(group, event_message("join", group, member))  # type: ignore[attr-defined]
        self.group_add(group, channel)  # type: ignore[attr-defined]
        return member.joined

    def presence_leave(self, group: str, channel: str) -> bool:
        """Remove `channel` from `group` and its record; True if it had one (then a leave event if asked)."""
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        self.group_discard(group, channel)  # type: ignore[attr-defined]
        with self._cond:  # type: ignore[attr-defined]
            found = self._pop_record(group, channel)
        if found is None:
            return False
        member, events = found
        if events:
            self.send_group(group, event_message("leave", group, member))  # type: ignore[attr-defined]
        return True

    def _pop_record(self, group: str, channel: str) -> tuple[Member, bool] | None:
        records = self._presence_records()
        members = records.get(group)
        found = members.pop(channel, None) if members else None
        if members is not None and not members:
            del records[group]
        return found

    def presence_members(self, group: str) -> list[Member]:
        """The members of `group`'s presence, oldest join first; not those of a holder whose lease expired."""
        names.validate_group_name(group)
        now, clock = time.time(), time.monotonic()
        cutoff = now - self.group_expiry  # type: ignore[attr-defined]
        with self._cond:  # type: ignore[attr-defined]
            members = self._presence_records().get(group, {})
            for channel in [c for c, (m, _) in members.items() if m.joined < cutoff]:
                del members[channel]  # as old as an expired group membership
            leases = self._leases  # type: ignore[attr-defined]
            out = []
            for channel, (member, _) in members.items():
                holder = names.list_name(channel)
                if holder.endswith("!"):
                    expires = leases.expires.get(holder)
                    if holder in leases.swept or (expires is not None and expires <= clock):
                        continue
                out.append(member)
        out.sort(key=lambda member: member.joined)
        return out

    def _presence_sweep(self) -> int:
        """Remove the records of swept holders, their group memberships, and send their leave events; how many."""
        with self._cond:  # type: ignore[attr-defined]
            swept = self._leases.swept  # type: ignore[attr-defined]
            gone: list[tuple[str, Member, bool]] = []
            for group, members in list(self._presence_records().items()):
                for channel in [c for c in members if names.list_name(c) in swept]:
                    found = self._pop_record(group, channel)
                    if found is not None:
                        gone.append((group, *found))
        for group, member, events in gone:
            self.group_discard(group, member.channel)  # type: ignore[attr-defined]
            if events:
                self.send_group(group, event_message("leave", group, member))  # type: ignore[attr-defined]
        return len(gone)

    def _presence_clear(self) -> Any:
        """Forget every record (`flush`)."""
        self.__dict__["_presence"] = {}
