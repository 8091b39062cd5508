"""From popped list elements to messages, and the local buffer of fanned-out ones.

A group send to many sockets of one process is a single element naming all
of them (see `framing`). A receive that asked for fewer messages than the
element holds keeps the rest here, in this process, for the next receive:
they are already out of Redis, so nobody else could deliver them.

Anything can be pushed into a Redis list, so every element is decoded on its
own: one that is not framed by this layer, does not decode, is not a dict, or
is larger than any message the layer sends is dropped and counted, and the
elements popped with it are delivered. Drops are logged with the channel
name at most once a minute per channel (`drop_log.DropLog`) (with the count
since), so a flood of garbage cannot flood the log.

Each message handed out also has its queue wait (from its send to now,
on the Redis server's clock) recorded for the receiving thread
(`QueueWaits`, the `queue_wait` extension).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from ..drop_log import DropLog
from ..history import envelope, status_message
from ..serialization import MAX_MESSAGE_SIZE
from . import framing

logger = logging.getLogger("channels_core.layers.redis")

MAX_PAYLOAD = MAX_MESSAGE_SIZE * 4 // 3 + 64 * 1024
"""The largest payload accepted: the message size limit once Fernet-encrypted (base64), with room to spare."""


class Clock(Protocol):
    def now_ms(self) -> float:
        """The Redis server's clock, in milliseconds."""
        ...


class _Buffered(NamedTuple):
    channel: str
    expires: float  # time.monotonic()
    payload: memoryview
    mark: bytes = b""  # a group history position (see .history)


MAX_RECORDED_WAITS = 100_000
"""Waits kept per receive at most: a thread that began one and then only reads through an
`EventReceiver` must not grow its list for ever."""


class QueueWaits:
    """Per thread, the queue wait (seconds) of each message its current receive hands out, in order.

    The layer calls `begin()` at the start of each `receive`/`receive_batch`;
    the decoder `add`s one wait per message it returns; `last()` reads them.
    A thread that never began (an event loop's `EventReceiver`) records nothing.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def begin(self) -> None:
        self._local.waits = []

    def add(self, seconds: float, count: int = 1) -> None:
        """Record `count` messages that waited `seconds` (the members of one fanned-out element: one call)."""
        waits = getattr(self._local, "waits", None)
        if waits is not None and len(waits) < MAX_RECORDED_WAITS:
            count = min(count, MAX_RECORDED_WAITS - len(waits))
            waits.extend([seconds if seconds > 0 else 0.0] * count)  # clock estimates may put a message early

    def last(self) -> list[float]:
        return list(getattr(self._local, "waits", ()))


class Decoder:
    """Decodes the elements of one layer's queues; holds their fanned-out rest until it is received or expires."""

    def __init__(
        self, queue_name: Callable[[bytes], str], loads: Callable[[Any], dict], expiry_ms: float = 0.0
    ) -> None:
        self._queue_name = queue_name
        self._loads = loads
        self.expiry_ms = expiry_ms
        """The layer's expiry: a message was sent at its deadline less this."""
        self.waits = QueueWaits()
        self._buffer: dict[str, deque[_Buffered]] = {}
        self._lock = threading.Lock()
        self.drops = DropLog(logger)
        """Elements and messages dropped as unreadable, by channel (`drops.counts`)."""

    def __bool__(self) -> bool:
        """True while fanned-out messages wait in the buffer."""
        return bool(self._buffer)

    def unpack(
        self, key: bytes, element: bytes, clock: Clock, now_ms: float | None, limit: int
    ) -> list[tuple[str, dict]]:
        """Decode one element of queue `key` into up to `limit` messages; buffer the rest.

        With `now_ms` (the server's clock when the element was popped), an
        expired element is dropped; `None` means the pop already dropped
        expired ones. `clock` dates what is buffered.
        """
        qname = self._queue_name(key)
        try:
            deadline, targets, payload = framing.parse(element)
            targets, _, mark = targets.partition(b"|")  # "|GROUP|EPOCH|OFFSET": see .history
            if qname.endswith("!"):
                channels = [qname + t for t in targets.decode("ascii").split(",")]
            else:
                channels = [qname]
        except (ValueError, TypeError):  # UnicodeDecodeError is a ValueError
            self.drops.drop(qname, "not an element written by this layer")
            return []
        if now_ms is not None and deadline <= now_ms:
            return []
        if len(payload) > MAX_PAYLOAD:
            self.drops.drop(qname, f"{len(payload)} bytes, larger than any message the layer sends")
            return []
        out = []
        now = clock.now_ms() if now_ms is None else now_ms
        wait = (now - (deadline - self.expiry_ms)) / 1000
        # A flat message (a group broadcast's text, with or without its history position) is decoded (and
        # wrapped) once per element and copied per socket: each gets a dict of its own to change.
        shared = None
        for channel in channels[:limit]:
            if shared is not None:
                message = dict(shared)
            else:
                message = self._decode(channel, payload, mark)
                if message is not None and len(channels) > 1 and all(isinstance(v, _FLAT) for v in message.values()):
                    shared = message
            if message is not None:
                out.append((channel, message))
        if out:
            self.waits.add(wait, len(out))  # once per element, not per socket: 10,000 sockets are 10,000 calls
        if len(channels) > limit:
            expires = time.monotonic() + (deadline - now) / 1000
            with self._lock:
                queue = self._buffer.setdefault(qname, deque())
                queue.extend(_Buffered(c, expires, payload, mark) for c in channels[limit:])
        return out

    def unpack_all(self, key: bytes, elements: list[bytes], clock: Clock, limit: int) -> list[tuple[str, dict]]:
        """Decode the elements of one blocking pop (checking expiry) into up to `limit` messages; buffer the rest."""
        now = clock.now_ms()
        got: list[tuple[str, dict]] = []
        for element in elements:
            try:
                got += self.unpack(key, element, clock, now, limit - len(got))
            except Exception as exc:  # never lose the good elements of this pop for a bad one
                self.drops.drop(self._queue_name(key), f"{type(exc).__name__}: {exc}")
        return got

    def stash(self, key: bytes, elements: list[bytes], clock: Clock) -> None:
        """Keep every message of elements popped by a read that lost the race, for the next receive."""
        self.unpack_all(key, elements, clock, 0)

    def take(self, wanted: list[str], limit: int) -> list[tuple[str, dict]]:
        """Up to `limit` buffered messages for the queues `wanted`."""
        taken: list[_Buffered] = []
        now = time.monotonic()
        with self._lock:
            for name in wanted:
                queue = self._buffer.get(name)
                while queue and len(taken) < limit:
                    item = queue.popleft()
                    if item.expires > now:
                        taken.append(item)
                if queue is not None and not queue:
                    del self._buffer[name]
        out = []
        shared: tuple[memoryview, bytes, dict] | None = None  # as in `unpack`: the last element's flat message
        for item in taken:
            if shared is not None and item.payload is shared[0] and item.mark == shared[1]:
                message = dict(shared[2])
            else:
                message = self._decode(item.channel, item.payload, item.mark)
                if message is not None and all(isinstance(v, _FLAT) for v in message.values()):
                    shared = (item.payload, item.mark, message)
            if message is not None:
                out.append((item.channel, message))
                self.waits.add(now - (item.expires - self.expiry_ms / 1000))
        return out

    def clear(self) -> None:
        with self._lock:
            self._buffer.clear()

    def _decode(self, channel: str, payload: memoryview, mark: bytes = b"") -> dict | None:
        if mark:
            return self._decode_positioned(channel, payload, mark)
        try:
            message = self._loads(payload)
        except Exception as exc:
            self.drops.drop(_queue_of(channel), f"undecodable ({type(exc).__name__})")
            return None
        if not isinstance(message, dict):
            self.drops.drop(_queue_of(channel), f"a {type(message).__name__}, not a dict")
            return None
        return message

    def _decode_positioned(self, channel: str, payload: memoryview, mark: bytes) -> dict | None:
        """A message of a group with history: its text wrapped with its position, or a join's status frame."""
        try:
            group, epoch, offset, *status = mark.decode("ascii").split("|")
            if status:
                return status_message(group, epoch, int(offset), status[0] == "r")
            position = (group, epoch, int(offset))
        except ValueError:
            self.drops.drop(_queue_of(channel), "unreadable history position")
            return None
        message = self._decode(channel, payload)
        return None if message is None else envelope(message, *position)


_FLAT = (str, bytes, int, float, bool, type(None))
"""Values a shallow copy cannot share mutably between the sockets of one fanned-out element."""


def _queue_of(channel: str) -> str:
    """`prefix!` for a process channel `prefix!local`: a fanned-out element counts under its queue."""
    bang = channel.find("!")
    return channel if bang < 0 else channel[: bang + 1]
