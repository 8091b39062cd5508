"""An incremental RESP2 reply parser, for reading replies from a socket an event loop watches.

redis-py's parsers read until a reply is complete, blocking on the socket;
an event loop instead hands over whatever bytes have arrived and asks
whether a whole reply is there yet. Only what blocking pops return needs
to be understood: arrays (nested), bulk strings, integers, simple strings,
errors and nulls.
"""

from __future__ import annotations

from typing import Any


class ReplyError(Exception):
    """An error reply (`-ERR ...`) from the server."""


class ProtocolError(Exception):
    """Bytes that are not RESP: the connection cannot be trusted any more."""


_INCOMPLETE = object()
MAX_DEPTH = 32
"""Arrays nested deeper than this are a ProtocolError (blocking pops nest 2 deep; found by fuzzing: 1,000 levels
of `*1` overflowed Python's stack with a RecursionError)."""


class RespParser:
    """Feed bytes with `feed`; `get` returns each complete reply in turn, or `NOTHING` when none is whole yet."""

    NOTHING = _INCOMPLETE

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

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

    def _line(self, pos: int) -> tuple[bytes | None, int]:
        end = self._buf.find(b"\r\n", pos)
        if end < 0:
            return None, pos
        return bytes(self._buf[pos:end]), end + 2

    def _parse(self, pos: int, depth: int = 0) -> tuple[Any, int]:
        if depth > MAX_DEPTH:
            raise ProtocolError(f"arrays nested more than {MAX_DEPTH} deep")
        if pos >= len(self._buf):
            return _INCOMPLETE, pos
        kind = self._buf[pos : pos + 1]
        line, after = self._line(pos + 1)
        if line is None:
            return _INCOMPLETE, pos
        if kind == b"$":
            length = _int(line)
            if length < 0:
                return None, after
            if len(self._buf) < after + length + 2:
                return _INCOMPLETE, pos
            return bytes(self._buf[after : after + length]), after + length + 2
        if kind == b"*":
            count = _int(line)
            if count < 0:
                return None, after
            items = []
            for _ in range(count):
                item, after = self._parse(after, depth + 1)
                if item is _INCOMPLETE:
                    return _INCOMPLETE, pos
                items.append(item)
            return items, after
        if kind == b":":
            return _int(line), after
        if kind == b"+":
            return line, after
        if kind == b"-":
            return ReplyError(line.decode("utf-8", "replace")), after
        if kind == b"_":  # RESP3 null, should a proxy speak it
            return None, after
        raise ProtocolError(f"unexpected reply type byte {kind!r}")


def _int(line: bytes) -> int:
    try:
        return int(line)
    except ValueError:
        raise ProtocolError(f"bad length or integer {line[:40]!r}") from None
