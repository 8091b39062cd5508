"""Group memberships: one small file per group, replaced whole under an `flock`.

`g/<group>` holds a msgpack map {channel: added at (unix seconds)}. Writers
(`group_add`, `group_discard`, evictions) take an exclusive `flock` on one of
64 lock files `gl/<n>` chosen by a hash of the group name (separate files:
the data file is replaced, and a lock on a replaced inode would exclude
nobody; 64 so they never pile up), read, change, write the new map into
`t/` and `rename()` it over the old one. Readers (`send_group`,
`group_channels`) take no lock: a rename swaps whole files, so they see the
map before or after a change, never half of one. A writer killed at any
point leaves the old map (plus, at worst, a file in `t/`), and the kernel
releases its lock.
"""

from __future__ import annotations

import fcntl
import os
import time
import zlib
from collections.abc import Iterable

import msgpack

from ..errors import ChannelFull

LOCKS = 64


class Groups:
    """The group files under one layer root."""

    def __init__(self, root: str, tmp_path, group_expiry: float, group_memory: int) -> None:
        self.gdir = os.path.join(root, "g")
        self.ldir = os.path.join(root, "gl")
        self._tmp_path = tmp_path
        self.group_expiry = group_expiry
        self.group_memory = group_memory

    def read(self, group: str) -> dict[str, float]:
        """The live members of `group` with the time each was (last) added."""
        try:
            with open(os.path.join(self.gdir, group), "rb") as file:
                members = msgpack.unpackb(file.read(), raw=False)
        except FileNotFoundError:
            return {}
        cutoff = time.time() - self.group_expiry
        return {channel: added for channel, added in members.items() if added > cutoff}

    def change(self, group: str, add: Iterable[str] = (), discard: Iterable[str] = ()) -> None:
        """Add and remove members under the group's lock; expired members are dropped on the way."""
        for path in (self.gdir, self.ldir):
            os.makedirs(path, exist_ok=True)
        fd = os.open(self.lock_path(group), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            members = self.read(group)
            before = dict(members)
            now = time.time()
            for channel in add:
                members[channel] = now
            for channel in discard:
                members.pop(channel, None)
            if members == before and not add:
                return
            if not members:
                try:
                    os.unlink(os.path.join(self.gdir, group))  # an empty group leaves no file behind
                except FileNotFoundError:
                    pass
                return
            data = msgpack.packb(members, use_bin_type=True)
            if len(data) > self.group_memory:
                raise ChannelFull(
                    f"Group {group!r} would take {len(data)} bytes; group_memory allows {self.group_memory}"
                )
            tmp = self._tmp_path()
            with open(tmp, "wb") as file:
                file.write(data)
            try:
                os.rename(tmp, os.path.join(self.gdir, group))
            except FileNotFoundError:
                os.unlink(tmp)  # flushed meanwhile
        finally:
            os.close(fd)

    def lock_path(self, group: str) -> str:
        """The lock file of `group`: one of `LOCKS`, by a hash of its name, so lock files never pile up."""
        return os.path.join(self.ldir, str(zlib.crc32(group.encode()) % LOCKS))

    def names(self) -> list[str]:
        try:
            return os.listdir(self.gdir)
        except FileNotFoundError:
            return []
