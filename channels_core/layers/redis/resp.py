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
_BULK, _ARRAY, _INTEGER, _SIMPLE, _ERROR, _NULL = b"$*:+-_"
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

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def get(self) -> Any:
        """The next complete reply (an error reply as a `ReplyError` instance), or `NOTHING`."""
        value, end = self._parse(self._pos)
        if value is _INCOMPLETE:
            return _INCOMPLETE
        self._pos = end
        return value

    def has_data(self) -> bool:
        """True when bytes are buffered that no reply returned so far used (part of a reply, or more)."""
        return len(self._buf) > self._pos

    def _parse(self, pos: int, depth: int = 0) -> tuple[Any, int]:
        # Type bytes compared as ints and lengths parsed straight from the buffer: the lean path
        # parses every reply of the layer here when hiredis is not installed.
        if depth > MAX_DEPTH:
            raise ProtocolError(f"arrays nested more than {MAX_DEPTH} deep")
        buf = self._buf
        if pos >= len(buf):
            return _INCOMPLETE, pos
        end = buf.find(b"\r\n", pos + 1)
        if end < 0:
            return _INCOMPLETE, pos
        kind = buf[pos]
        after = end + 2
        if kind == _BULK:
            length = _int(buf[pos + 1 : end])
            if length < 0:
                return None, after
            stop = after + length
            if len(buf) < stop + 2:
                return _INCOMPLETE, pos
            return bytes(buf[after:stop]), stop + 2
        if kind == _ARRAY:
            count = _int(buf[pos + 1 : end])
            if count < 0:
                return None, after
            items = []
            for _ in range(count):
                item, after = self._parse(after, depth + 1)
                if item is _INCOMPLETE:
                    return _INCOMPLETE, pos
                items.append(item)
            return items, after
        if kind == _INTEGER:
            return _int(buf[pos + 1 : end]), after
        if kind == _SIMPLE:
            return bytes(buf[pos + 1 : end]), after
        if kind == _ERROR:
            return self._reply_error(buf[pos + 1 : end].decode("utf-8", "replace")), after
        if kind == _NULL:  # RESP3 null, should a proxy speak it
            return None, after
        if self._resp3:
            return self._parse_resp3(bytes((kind,)), bytes(buf[pos + 1 : end]), pos, after, depth)
        raise ProtocolError(f"unexpected reply type byte {bytes((kind,))!r}")

    def _parse_resp3(self, kind: bytes, line: bytes, pos: int, after: int, depth: int) -> tuple[Any, int]:
        if kind == b"(":
            return _int(line), after
        if kind == b",":
            try:
                return float(line), after
            except ValueError:
                raise ProtocolError(f"bad double {line[:40]!r}") from None
        if kind == b"#":
            return line == b"t", after
        if kind in (b"=", b"!"):
            length = _int(line)
            if length < 0 or len(self._buf) < after + length + 2:
                return (_INCOMPLETE, pos) if length >= 0 else (None, after)
            data = bytes(self._buf[after : after + length])
            end = after + length + 2
            if kind == b"!":
                return self._reply_error(data.decode("utf-8", "replace")), end
            return data[4:], end  # "txt:..." without its format, as redis-py returns it
        if kind in (b"~", b">", b"%"):
            count = _int(line) * (2 if kind == b"%" else 1)
            items = []
            for _ in range(max(count, 0)):
                item, after = self._parse(after, depth + 1)
                if item is _INCOMPLETE:
                    return _INCOMPLETE, pos
                items.append(item)
            if kind == b"%":
                return dict(zip(items[::2], items[1::2], strict=True)), after
            return (Push(items) if kind == b">" else items), after
        raise ProtocolError(f"unexpected reply type byte {kind!r}")


def _int(line: bytes | bytearray) -> int:
    try:
        return int(line)
    except ValueError:
        raise ProtocolError(f"bad length or integer {bytes(line[:40])!r}") from None
