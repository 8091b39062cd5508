"""The `leases` extension across processes: a directory per holder, a file per tracked connection.

`l/<holder>/lease` holds `{expires (unix seconds), info}`; `l/<holder>/c.<reply
channel>` holds the `(channel, message)` that connection must end with.
Releasing a connection and sweeping a dead holder compete for the same
files by `unlink()`/`rename()`, so exactly one of them sends each
disconnect, without a lock between them. Renewals, sweeps and ends take
one `flock` (`l.lock`) so a sweep sees a lease expired or renewed, never
between; the sweeper election is a small file under that lock. A swept
holder's directory is renamed to `lswept/<holder>.<ns>` at once (its late
releases then find nothing), emptied, and a tombstone `swept/<holder>`
(kept a day) tells its next renewal "swept".
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable

import msgpack

TOMBSTONE_AGE = 86400


class SharedLeases:
    def __init__(self, root: str, tmp_path: Callable[[], str]) -> None:
        self.ldir = os.path.join(root, "l")
        self.sdir = os.path.join(root, "swept")
        self.gone = os.path.join(root, "lswept")
        self.lock = os.path.join(root, "l.lock")
        self.election = os.path.join(root, "l.sweeper")
        self._tmp_path = tmp_path
        self.known: set[str] = set()

    # -- files ---------------------------------------------------------------------

    def _write(self, path: str, value) -> None:
        tmp = self._tmp_path()
        with open(tmp, "wb") as file:
            file.write(msgpack.packb(value, use_bin_type=True))
        try:
            os.rename(tmp, path)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.rename(tmp, path)

    @staticmethod
    def _read(path: str):
        try:
            with open(path, "rb") as file:
                return msgpack.unpackb(file.read(), raw=False)
        except (FileNotFoundError, ValueError):
            return None

    def _locked(self) -> int:
        os.makedirs(os.path.dirname(self.lock), exist_ok=True)
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    # -- the holder's side ---------------------------------------------------------

    def renew(self, holder: str, ttl: float, info: dict) -> str:
        fd = self._locked()
        try:
            lease = self._read(os.path.join(self.ldir, holder, "lease"))
            state = "held"
            if lease is None:
                tomb = os.path.join(self.sdir, holder)
                if os.path.exists(tomb):
                    os.unlink(tomb)
                    state = "swept"
                elif holder in self.known:
                    state = "lost"
            self._write(os.path.join(self.ldir, holder, "lease"), {"expires": time.time() + ttl, "info": info})
            self.known.add(holder)
            return state
        finally:
            os.close(fd)

    def track(self, holder: str, reply_channel: str, value: tuple[str, bytes]) -> None:
        self._write(os.path.join(self.ldir, holder, "c." + reply_channel), list(value))

    def release(self, holder: str, reply_channel: str) -> bool:
        """Forget the connection; True if it was still tracked (whoever unlinks it sends its disconnect)."""
        try:
            os.unlink(os.path.join(self.ldir, holder, "c." + reply_channel))
            return True
        except FileNotFoundError:
            return False

    def end(self, holder: str) -> None:
        fd = self._locked()
        try:
            shutil.rmtree(os.path.join(self.ldir, holder), ignore_errors=True)
            try:
                os.unlink(os.path.join(self.sdir, holder))
            except FileNotFoundError:
                pass
            election = self._read(self.election)
            if election and election[0] == holder:
                os.unlink(self.election)  # a sweeper that stops hands the election over at once
            self.known.discard(holder)
        finally:
            os.close(fd)

    def connections(self, holder: str) -> list[str]:
        try:
            names = os.listdir(os.path.join(self.ldir, holder))
        except FileNotFoundError:
            return []
        return sorted(name[2:] for name in names if name.startswith("c."))

    def holders(self) -> dict[str, dict]:
        now = time.time()
        out = {}
        try:
            holders = os.listdir(self.ldir)
        except FileNotFoundError:
            return out
        for holder in holders:
            lease = self._read(os.path.join(self.ldir, holder, "lease"))
            if lease and lease["expires"] > now:
                out[holder] = lease["info"]
        return out

    # -- the sweeper's side --------------------------------------------------------

    def sweep(self, sweeper: str, ttl: float, send: Callable[[str, str, bytes], None]) -> dict[str, int]:
        """If `sweeper` wins the election: take every expired holder's connections, `send` each disconnect.

        Returns {holder: disconnects sent}.
        """
        now = time.time()
        taken: list[tuple[str, str]] = []
        fd = self._locked()
        try:
            election = self._read(self.election)
            if election and election[0] != sweeper and election[1] > now:
                return {}
            self._write(self.election, [sweeper, now + ttl])
            for name in _listdir(self.sdir):
                try:
                    if os.stat(os.path.join(self.sdir, name)).st_mtime < now - TOMBSTONE_AGE:
                        os.unlink(os.path.join(self.sdir, name))
                except FileNotFoundError:
                    pass
            for holder in _listdir(self.ldir):
                lease = self._read(os.path.join(self.ldir, holder, "lease"))
                if lease is None or lease["expires"] > now:
                    continue  # live (or only tracked so far, never renewed: not a lease to sweep)
                target = os.path.join(self.gone, f"{holder}.{time.time_ns()}")
                os.makedirs(self.gone, exist_ok=True)
                os.rename(os.path.join(self.ldir, holder), target)
                os.makedirs(self.sdir, exist_ok=True)
                open(os.path.join(self.sdir, holder), "wb").close()
                taken.append((holder, target))
        finally:
            os.close(fd)
        sent: dict[str, int] = {}
        for holder, target in taken:
            sent[holder] = 0
            for name in sorted(_listdir(target)):
                if not name.startswith("c."):
                    continue
                value = self._read(os.path.join(target, name))
                if value is not None:
                    send(name[2:], value[0], value[1])
                    sent[holder] += 1
            shutil.rmtree(target, ignore_errors=True)
        return sent


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
