"""The `presence` extension of the IPC layer (see `channels_core.layers.presence` for the semantics).

Files under the layer's root, written whole and `rename()`d into place, as
the group files are (`.groups`):

    p/<group>            msgpack map {channel: [join time (unix s), record]}, changed under
                         an `flock` on one of 64 lock files `pl/<n>` (by a hash of the group)
    ph/<holder>/<group>  empty marker: `holder` (a "server!" queue) has members in `group`

A member of a "server!" queue whose lease (`.leases`) has expired or was
swept is left out of `presence_members`. `lease_sweep` then calls
`_presence_sweep`: each marker directory of a swept holder is claimed by
renaming it (one process wins), and its groups' records of that holder are
removed with their memberships, each leave event sent by the one process
that removed the record.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
import zlib

import msgpack

from .. import names
from ..presence import Member, check_join, decode_record, encode_record, event_message

LOCKS = 64

logger = logging.getLogger("channels_core.layers.ipc")


class IPCPresence:
    """Mixin for `IPCChannelLayer`: the `PresenceExtension` methods (list "presence" in `extensions`)."""

    # -- files -------------------------------------------------------------------------

    def _pdir(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)  # type: ignore[attr-defined]

    def _read_records(self, group: str) -> dict[str, list]:
        try:
            with open(self._pdir("p", group), "rb") as file:
                return msgpack.unpackb(file.read(), raw=False)
        except (FileNotFoundError, ValueError):
            return {}

    def _change_records(self, group: str, put: dict[str, list] | None = None, remove: tuple[str, ...] = ()) -> dict:
        """Put and remove records of `group` under its lock; the removed ones that were there."""
        for path in (self._pdir("p"), self._pdir("pl")):
            os.makedirs(path, exist_ok=True)
        lock = self._pdir("pl", str(zlib.crc32(group.encode()) % LOCKS))
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            records = self._read_records(group)
            removed = {channel: records.pop(channel) for channel in remove if channel in records}
            records.update(put or {})
            if not put and not removed:
                return removed
            path = self._pdir("p", group)
            if not records:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                return removed
            tmp = self._queues.tmp_path()  # type: ignore[attr-defined]
            with open(tmp, "wb") as file:
                file.write(msgpack.packb(records, use_bin_type=True))
            try:
                os.rename(tmp, path)
            except FileNotFoundError:
                os.unlink(tmp)  # flushed meanwhile
            return removed
        finally:
            os.close(fd)

    def _ipc_member(self, channel: str, stored: list) -> tuple[Member, bool]:
        record = decode_record(self.serializer, stored[1])  # type: ignore[attr-defined]
        return Member(channel, record.get("u"), stored[0], record.get("i")), bool(record.get("e"))

    # -- the extension -----------------------------------------------------------------

    def presence_join(
        self, group: str, channel: str, user: int | str | None = None, info: dict | None = None, events: bool = False
    ) -> float:
        """Add `channel` to `group` with its presence record; the join time (unix seconds)."""
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        check_join(user, info, events)
        record = encode_record(self.serializer, user, info, events)  # type: ignore[attr-defined]
        joined = time.time()
        holder = names.list_name(channel)
        if holder.endswith("!"):
            marker = self._pdir("ph", holder)
            os.makedirs(marker, exist_ok=True)
            open(os.path.join(marker, group), "wb").close()
        self._change_records(group, put={channel: [joined, record]})
        if events:
            self.send_group(group, event_message("join", group, self._ipc_member(channel, [joined, record])[0]))  # type: ignore[attr-defined]
        self.group_add(group, channel)  # type: ignore[attr-defined]
        return joined

    def presence_leave(self, group: str, channel: str) -> bool:
        """Remove `channel` from `group` and its record; True if it had one (then a leave event if asked)."""
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        self.group_discard(group, channel)  # type: ignore[attr-defined]
        removed = self._change_records(group, remove=(channel,))
        if channel not in removed:
            return False
        member, events = self._ipc_member(channel, removed[channel])
        if events:
            self.send_group(group, event_message("leave", group, member))  # type: ignore[attr-defined]
        return True

    def presence_members(self, group: str) -> list[Member]:
        """The members of `group`'s presence, oldest join first; not those of a holder whose lease expired."""
        names.validate_group_name(group)
        now = time.time()
        cutoff = now - self.group_expiry  # type: ignore[attr-defined]
        dead: dict[str, bool] = {}
        out = []
        for channel, stored in self._read_records(group).items():
            if stored[0] < cutoff:
                continue  # as old as an expired membership
            holder = names.list_name(channel)
            if holder.endswith("!"):
                if holder not in dead:
                    dead[holder] = self._holder_dead(holder, now)
                if dead[holder]:
                    continue
            try:
                out.append(self._ipc_member(channel, stored)[0])
            except Exception:  # garbage in a shared file: skip that record
                continue
        out.sort(key=lambda member: member.joined)
        return out

    def _holder_dead(self, holder: str, now: float) -> bool:
        leases = self._leases  # type: ignore[attr-defined]
        if os.path.exists(os.path.join(leases.sdir, holder)):
            return True
        lease = leases._read(os.path.join(leases.ldir, holder, "lease"))
        return lease is not None and lease["expires"] <= now

    def _presence_sweep(self) -> int:
        """Remove the records of swept holders, their memberships, and send their leave events; how many."""
        try:
            holders = os.listdir(self._pdir("ph"))
        except FileNotFoundError:
            return 0
        removed = 0
        for holder in holders:
            if not os.path.exists(os.path.join(self._leases.sdir, holder)):  # type: ignore[attr-defined]
                continue
            claimed = self._pdir("phswept", f"{holder}.{os.getpid()}.{time.time_ns()}")
            os.makedirs(self._pdir("phswept"), exist_ok=True)
            try:
                os.rename(self._pdir("ph", holder), claimed)  # one sweeper wins each holder
            except FileNotFoundError:
                continue
            for group in _listdir(claimed):
                records = self._read_records(group)
                mine = tuple(channel for channel in records if names.list_name(channel) == holder)
                for channel, stored in self._change_records(group, remove=mine).items():
                    removed += 1
                    self.group_discard(group, channel)  # type: ignore[attr-defined]
                    member, events = self._ipc_member(channel, stored)
                    if events:
                        self.send_group(group, event_message("leave", group, member))  # type: ignore[attr-defined]
            shutil.rmtree(claimed, ignore_errors=True)
        if removed:
            logger.info("Presence: removed %d members of interface servers whose lease was swept", removed)
        return removed


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
