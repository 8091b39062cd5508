"""The `ordering` extension across processes: `.order_book`'s state machine on one file per connection.

`o/<reply channel>` holds the connection's state as a msgpack map (next
order, since when the gap has not moved, the parked messages, dead, expiry),
changed under an `flock` and replaced whole by `rename()`, like a group. The
locks are 64 files (`ol/<n>`, by a hash of the reply channel), not one per
connection, so they never pile up; the state files go at `order_forget`, or
at a sweep once expired (`group_expiry` after their last use). Times are the
machine's wall clock, which every process shares.
"""

from __future__ import annotations

import fcntl
import os
import time
import zlib
from collections.abc import Callable
from typing import Any

import msgpack

from ..order_book import DEAD, PARKED, RUN, STALE, STUCK

LOCKS = 64


class SharedOrderBook:
    def __init__(self, root: str, tmp_path: Callable[[], str], ttl: float) -> None:
        self.odir = os.path.join(root, "o")
        self.ldir = os.path.join(root, "ol")
        self._tmp_path = tmp_path
        self.ttl = ttl

    def _locked(self, key: str) -> int:
        os.makedirs(self.ldir, exist_ok=True)
        os.makedirs(self.odir, exist_ok=True)
        fd = os.open(os.path.join(self.ldir, str(zlib.crc32(key.encode()) % LOCKS)), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _load(self, key: str, now: float) -> dict:
        try:
            with open(os.path.join(self.odir, key), "rb") as file:
                state = msgpack.unpackb(file.read(), raw=False, strict_map_key=False)
        except FileNotFoundError:
            state = None
        if state is None or state["expires"] <= now:
            state = {"next": 0, "since": None, "parked": {}, "dead": False, "expires": 0.0}
        state["expires"] = now + self.ttl
        return state

    def _save(self, key: str, state: dict) -> None:
        tmp = self._tmp_path()
        with open(tmp, "wb") as file:
            file.write(msgpack.packb(state, use_bin_type=True))
        try:
            os.rename(tmp, os.path.join(self.odir, key))
        except FileNotFoundError:
            os.unlink(tmp)  # flushed meanwhile

    def claim(self, key: str, order: int, payload: bytes, timeout: float, max_parked: int) -> str:
        now = time.time()
        fd = self._locked(key)
        try:
            state = self._load(key, now)
            if state["dead"]:
                self._save(key, state)
                return DEAD
            if order < state["next"] or order in state["parked"]:
                return STALE
            if order == state["next"]:
                self._save(key, state)
                return RUN
            stuck = state["since"] is not None and now - state["since"] > timeout
            if stuck or len(state["parked"]) >= max_parked:
                self._save(key, {"next": 0, "since": None, "parked": {}, "dead": True, "expires": now + self.ttl})
                return STUCK
            state["parked"][order] = payload
            if state["since"] is None:
                state["since"] = now
            self._save(key, state)
            return PARKED
        finally:
            os.close(fd)

    def advance(self, key: str, order: int) -> Any:
        now = time.time()
        fd = self._locked(key)
        try:
            state = self._load(key, now)
            if state["dead"]:
                return None
            state["next"] = max(state["next"], order + 1)
            payload = state["parked"].pop(state["next"], None)
            state["since"] = now if state["parked"] or payload is not None else None
            self._save(key, state)
            return payload
        finally:
            os.close(fd)

    def next_order(self, key: str) -> int:
        """The order `key` waits for next (0 without state): what a swept disconnect carries."""
        now = time.time()
        try:
            with open(os.path.join(self.odir, key), "rb") as file:
                state = msgpack.unpackb(file.read(), raw=False, strict_map_key=False)
        except (FileNotFoundError, ValueError):
            return 0
        return state["next"] if state["expires"] > now else 0

    def forget(self, key: str) -> None:
        fd = self._locked(key)
        try:
            os.unlink(os.path.join(self.odir, key))
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)

    def sweep(self) -> None:
        """Remove the state of connections unused for `ttl` seconds."""
        now = time.time()
        try:
            keys = os.listdir(self.odir)
        except FileNotFoundError:
            return
        for key in keys:
            try:
                if os.stat(os.path.join(self.odir, key)).st_mtime + self.ttl > now:
                    continue
            except FileNotFoundError:
                continue
            fd = self._locked(key)
            try:
                path = os.path.join(self.odir, key)
                if os.stat(path).st_mtime + self.ttl <= now:
                    os.unlink(path)
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)
