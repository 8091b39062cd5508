"""An incremental RESP reply parser, for reading replies from a socket an event loop watches.

redis-py's parsers read until a reply is complete, blocking on the socket;
an event loop instead hands over whatever bytes have arrived and asks
whether a whole reply is there yet. By default only what blocking pops
return is understood: arrays (nested), bulk strings, integers, simple
strings, errors and nulls. With `resp3`, the lean command path (`lean`)
reads every RESP3 type redis-py's own RESP3 parser reads, into the same
Python values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.exceptions import InvalidResponse


class ReplyError(Exception):
    """An error reply (`-ERR ...`) from the server."""


class ProtocolError(InvalidResponse):
    """Bytes that are not RESP: the connection cannot be trusted any more (redis-py's `InvalidResponse`)."""


class Push(list):
    """A RESP3 push message (`>`): not the reply to a command (maintenance notices, invalidations)."""


_INCOMPLETE = object()
_OPENED = object()
_BULK, _ARRAY, _INTEGER, _SIMPLE, _ERROR, _NULL = b"$*:+-_"
_BIG_NUMBER, _DOUBLE, _BOOLEAN, _VERBATIM, _BULK_ERROR, _SET, _PUSH, _MAP = b"(,#=!~>%"
MAX_DEPTH = 32
"""Arrays nested deeper than this are a ProtocolError (blocking pops nest 2 deep; found by fuzzing: 1,000 levels
of `*1` overflowed Python's stack with a RecursionError)."""


class RespParser:
    """Feed bytes with `feed`; `get` returns each complete reply in turn, or `NOTHING` when none is whole yet.

    An error reply becomes `reply_error(text)`: a `ReplyError` unless the
    caller wants its own classes (the lean path wants redis-py's). With
    `resp3`, RESP3's types are read as redis-py's RESP3 parser reads them
    (doubles, booleans, big numbers, verbatim strings without their format,
    sets as lists, maps as dicts, bulk errors) and a push message comes
    back as a `Push`.
    """

    NOTHING = _INCOMPLETE

    def __init__(self, reply_error: Callable[[str], Any] = ReplyError, resp3: bool = False) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._reply_error = reply_error
        self._resp3 = resp3
        self._stack: list[list] = []
        """Containers of the reply being read, outermost first: [type byte, items so far, items still to come]."""

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def get(self) -> Any:
        """The next complete reply (an error reply as a `ReplyError` instance), or `NOTHING`.

        Incremental: the containers a reply has opened so far are kept
        between calls, so a big reply arriving in many pieces is parsed once
        (re-parsing it from its start after each piece was quadratic).
        """
        buf = self._buf
        size = len(buf)
        pos = self._pos
        stack = self._stack
        while True:
            # Type bytes compared as ints and lengths parsed straight from the buffer: the lean path
            # parses every reply of the layer here when hiredis is not installed.
            if pos >= size:
                break
            end = buf.find(b"\r\n", pos + 1)
            if end < 0:
                break
            kind = buf[pos]
            after = end + 2
            if kind == _BULK:
                length = _int(buf[pos + 1 : end])
                if length < 0:
                    value = None
                    pos = after
                else:
                    stop = after + length
                    if size < stop + 2:
                        break
                    value = bytes(buf[after:stop])
                    pos = stop + 2
            elif kind == _ARRAY:
                count = _int(buf[pos + 1 : end])
                pos = after
                if count > 0:
                    self._open(kind, count)
                    continue
                value = None if count < 0 else []
            elif kind == _INTEGER:
                value = _int(buf[pos + 1 : end])
                pos = after
            elif kind == _SIMPLE:
                value = bytes(buf[pos + 1 : end])
                pos = after
            elif kind == _ERROR:
                value = self._reply_error(buf[pos + 1 : end].decode("utf-8", "replace"))
                pos = after
            elif kind == _NULL:  # RESP3 null, should a proxy speak it
                value = None
                pos = after
            elif self._resp3:
                value, pos = self._resp3_value(kind, pos, end)
                if value is _INCOMPLETE:
                    break
                if value is _OPENED:
                    continue
            else:
                raise ProtocolError(f"unexpected reply type byte {bytes((kind,))!r}")
            # A whole value: it goes into the container it belongs to, closing those it completes.
            while stack:
                top = stack[-1]
                top[1].append(value)
                top[2] -= 1
                if top[2]:
                    break
                stack.pop()
                value = _closed(top)
            else:
                self._pos = pos
                return value
        self._pos = pos  # the start of the value not yet whole
        return _INCOMPLETE

    def has_data(self) -> bool:
        """True when bytes are buffered that no reply returned so far used (part of a reply, or more)."""
        return len(self._buf) > self._pos or bool(self._stack)

    def _open(self, kind: int, count: int) -> None:
        self._stack.append([kind, [], count])
        if len(self._stack) > MAX_DEPTH:
            raise ProtocolError(f"arrays nested more than {MAX_DEPTH} deep")

    def _resp3_value(self, kind: int, pos: int, end: int) -> tuple[Any, int]:
        """RESP3's other types: (value, where the next starts), `_INCOMPLETE` or `_OPENED` (a container)."""
        buf = self._buf
        line = bytes(buf[pos + 1 : end])
        after = end + 2
        if kind == _BIG_NUMBER:
            return _int(line), after
        if kind == _DOUBLE:
            try:
                return float(line), after
            except ValueError:
                raise ProtocolError(f"bad double {line[:40]!r}") from None
        if kind == _BOOLEAN:
            return line == b"t", after
        if kind in (_VERBATIM, _BULK_ERROR):
            length = _int(line)
            if length < 0:
                return None, after
            if len(buf) < after + length + 2:
                return _INCOMPLETE, pos
            data = bytes(buf[after : after + length])
            if kind == _BULK_ERROR:
                return self._reply_error(data.decode("utf-8", "replace")), after + length + 2
            return data[4:], after + length + 2  # "txt:..." without its format, as redis-py returns it
        if kind in (_SET, _PUSH, _MAP):
            count = _int(line) * (2 if kind == _MAP else 1)
            if count > 0:
                self._open(kind, count)
                return _OPENED, after
            return _closed([kind, [], 0]), after
        raise ProtocolError(f"unexpected reply type byte {bytes((kind,))!r}")


def _closed(container: list) -> Any:
    """The value of a container whose last item was read: [kind, items, 0]."""
    kind, items = container[0], container[1]
    if kind == _MAP:
        return dict(zip(items[::2], items[1::2], strict=True))
    if kind == _PUSH:
        return Push(items)
    return items


def _int(line: bytes | bytearray) -> int:
    try:
        return int(line)
    except ValueError:
        raise ProtocolError(f"bad length or integer {bytes(line[:40])!r}") from None
