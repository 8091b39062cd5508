"""The lean command path: commands packed and replies parsed here, on a redis-py connection's own socket.

Every message of the stack crosses `Shard.send_commands`/`read_replies` and
the blocking pops. redis-py's path for one command packs it through its
generic serializer (a buffer-cutoff loop per argument), writes it, and reads
the reply through a `BytesIO` socket buffer (seek, tell and readline per
line), then dispatches on the protocol version: several microseconds of
Python per command, more than the layer's own work. Here a command is
packed by one small function, written with one syscall, and its replies
are parsed by `hiredis.Reader` when hiredis is installed, else by
`resp.RespParser`.

redis-py still owns the connection: it connects (AUTH, SELECT, CLIENT
SETINFO), disconnects, and reads whatever this path does not. That is safe
because each path reads whole replies of the commands it sent, so neither
leaves bytes behind in its parser for the other. Error replies become the
same exception classes redis-py raises (its parser's own `parse_error`),
and network errors the same `redis.exceptions` errors with the same texts,
the connection dropped as redis-py drops it.

Only a connection this path reads exactly like redis-py takes it
(`replies_of`): a plain `Connection`, `SSLConnection` or
`UnixDomainSocketConnection` (not Sentinel's, which turns READONLY replies
into disconnects inside `read_response`) with bytes replies, UTF-8 strict
encoding, no periodic health check, and a parser this module mirrors
(redis-py's pure-Python RESP2 or RESP3 parser, or its hiredis parser:
`redis_py_private.reply_format`). A RESP3 push message (a maintenance
notice) that comes before a reply goes to redis-py's own handler. Any
other connection keeps redis-py's path.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any

import redis
import redis.exceptions as rexc

from .redis_py_private import error_parser, hiredis_push_type, push_handler, reply_format, socket_of
from .resp import Push, RespParser

try:
    import hiredis
except ImportError:  # the `hiredis` extra is not installed
    hiredis = None

_RECV_SIZE = 64 * 1024
_SERVER_CLOSED = "Connection closed by server."
_NOTHING = RespParser.NOTHING
_CACHED_HEADERS = 1024
_HEADERS = [b"$%d\r\n" % size for size in range(_CACHED_HEADERS)]
"""Bulk string headers of short arguments, made once: formatting one costs more than the rest of the argument."""

LEAN_CLASSES = (redis.Connection, redis.SSLConnection, redis.UnixDomainSocketConnection)


def pack(commands: Sequence[Sequence[Any]], encode: Callable[[Any], Any]) -> bytes:
    """`commands` as RESP arrays of bulk strings, in one bytes object (the same in RESP2 and RESP3).

    bytes, str (UTF-8) and int are encoded here; anything else by `encode`
    (the connection's `Encoder.encode`: floats, memoryviews, and the
    `DataError` redis-py raises for a bool or None). As redis-py does, a
    first argument holding spaces is split into several (`"CLIENT ID"`).
    """
    out: list[Any] = []
    append = out.append
    for command in commands:
        first = command[0]
        if type(first) is str:
            if not first.isalpha():  # "EVALSHA": nothing to split; else exactly as redis-py splits it
                command = (*first.encode().split(), *command[1:])
        elif type(first) is bytes and b" " in first:
            command = (*first.split(), *command[1:])
        append(b"*%d\r\n" % len(command))
        for arg in command:
            kind = type(arg)
            if kind is bytes:
                data = arg
            elif kind is str:
                data = arg.encode()
            elif kind is int:
                data = b"%d" % arg
            else:
                data = encode(arg)
            size = len(data)
            append(_HEADERS[size] if size < _CACHED_HEADERS else b"$%d\r\n" % size)
            append(data)
            append(b"\r\n")
    return b"".join(out)


def new_reader(reply_format: str, reply_error: Callable[[str], Any]) -> Any:
    """An incremental reader of replies in `reply_format` (see `redis_py_private.reply_format`).

    It has hiredis.Reader's interface: `feed(bytes)`, `gets()` (`NOTHING`
    until a reply is whole), `has_data()`. An error reply becomes
    `reply_error(text)` at any depth. RESP2 is read by hiredis when it is
    installed; RESP3 by hiredis only where redis-py reads it with hiredis
    too, so every value comes out as redis-py's own parser makes it.
    """
    if reply_format == "hiredis" or (reply_format == "resp2" and hiredis is not None):
        try:
            return hiredis.Reader(protocolError=rexc.InvalidResponse, replyError=reply_error, notEnoughData=_NOTHING)
        except TypeError:  # hiredis before 3.0 has no notEnoughData
            return _OldHiredis(reply_error)
    return _PythonReader(_raising_connection_errors(reply_error), resp3=reply_format == "resp3")


def _raising_connection_errors(reply_error: Callable[[str], Any]) -> Callable[[str], Any]:
    # redis-py's pure-Python parsers raise an error reply that means "this connection is unusable"
    # (LOADING, max clients: a redis ConnectionError) where they meet it, even inside an array.
    def error(text: str) -> Any:
        exc = reply_error(text)
        if isinstance(exc, rexc.ConnectionError):
            raise exc
        return exc

    return error


class _PythonReader(RespParser):
    """`RespParser` with hiredis.Reader's method names (its ProtocolError is redis-py's InvalidResponse)."""

    gets = RespParser.get


class _OldHiredis:
    """hiredis 2.x, which says "not enough data" with False: a RESP2 reply is never False."""

    def __init__(self, reply_error: Callable[[str], Any]) -> None:
        self._reader = hiredis.Reader(protocolError=rexc.InvalidResponse, replyError=reply_error)
        self.feed = self._reader.feed
        self.has_data = self._reader.has_data

    def gets(self) -> Any:
        reply = self._reader.gets()
        return _NOTHING if reply is False else reply


def replies_of(conn: Any) -> Replies | None:
    """The lean path of `conn`, or None when it must keep redis-py's (decided once per connection).

    Decided again once connected: a connection whose parser this module
    does not read like redis-py (`redis_py_private.reply_format`) leaves it.
    """
    lean = conn.__dict__.get("channels_lean", _NOTHING)
    if lean is _NOTHING:
        lean = conn.channels_lean = Replies(conn) if _eligible(conn) else None
    return lean


def _eligible(conn: Any) -> bool:
    encoder = getattr(conn, "encoder", None)
    return (
        type(conn) in LEAN_CLASSES
        and encoder is not None
        and not encoder.decode_responses
        and encoder.encoding.lower().replace("_", "-") in ("utf-8", "utf8")
        and encoder.encoding_errors == "strict"
        and not getattr(conn, "health_check_interval", 0)
    )


class Replies:
    """Writes packed commands to one redis-py connection's socket and reads their replies from it.

    Any error leaves the connection disconnected, as redis-py leaves it;
    callers drop it from their pool as they do after redis-py's errors.
    """

    __slots__ = ("conn", "sock", "reader", "_fd", "_encode", "_push", "_on_push")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.sock: socket.socket | None = None
        self.reader: Any = None
        self._fd = -1
        self._encode = conn.encoder.encode
        self._push: type | None = None
        self._on_push: Callable[[Any], Any] | None = None

    def pack(self, commands: Sequence[Sequence[Any]]) -> bytes:
        return pack(commands, self._encode)

    def _attach(self, sock: socket.socket) -> None:
        # A new socket (a reconnect) gets a new reader: nothing of the old conversation carries over.
        conn = self.conn
        kind = reply_format(conn)  # known once connected: redis-py may have fallen back to RESP2
        if kind is None:
            conn.channels_lean = None  # a parser read only by redis-py: replies_of() says so from now on
            return
        self.sock = sock
        self.reader = new_reader(kind, error_parser(conn))
        self._push = Push if kind == "resp3" else hiredis_push_type(conn)
        self._on_push = push_handler(conn)
        # os.write skips the poll() a socket with a timeout makes before every send; TLS must go through ssl.
        self._fd = -1 if isinstance(sock, ssl.SSLSocket) else sock.fileno()

    def send(self, data: bytes) -> None:
        """Write `data` (from `pack`), connecting first the way redis-py does if the connection is closed."""
        conn = self.conn
        sock = socket_of(conn)
        if sock is None:
            conn.send_packed_command([data], check_health=False)  # connects, writes, translates errors
            self._attach(socket_of(conn))
            return
        if sock is not self.sock:
            self._attach(sock)
            if self.reader is None:  # redis-py reads this connection: let it write too
                conn.send_packed_command([data], check_health=False)
                return
        try:
            fd = self._fd
            if fd >= 0:
                try:
                    written = os.write(fd, data)
                except BlockingIOError:
                    written = 0
                if written < len(data):
                    sock.sendall(memoryview(data)[written:])
            else:
                sock.sendall(data)
        except BaseException as exc:
            self._disconnect()
            error = _write_error(exc)
            if error is exc:
                raise
            raise error from exc

    def read(self, count: int, last: bool = True) -> list[Any]:
        """The next `count` replies, an error reply as its exception instance (not raised).

        An error that means the connection is unusable (LOADING, max clients: a
        `redis.exceptions.ConnectionError`) is raised, as redis-py raises it.
        With `last`, these are all the replies owed: a byte more is a protocol error.
        """
        reader = self.reader
        if reader is None or socket_of(self.conn) is not self.sock:
            self._disconnect()
            raise rexc.ConnectionError(_SERVER_CLOSED)
        out = []
        push = self._push
        try:
            while len(out) < count:
                reply = reader.gets()
                if reply is _NOTHING:
                    self._receive()
                    continue
                if push is not None and isinstance(reply, push):
                    self._pushed(reply)
                    continue
                # As redis-py's hiredis parser does (the pure-Python reader raised it already).
                if isinstance(reply, rexc.ConnectionError):
                    raise reply
                if type(reply) is list and reply and isinstance(reply[0], rexc.ConnectionError):
                    raise reply[0]
                out.append(reply)
            if last and reader.has_data():
                raise rexc.InvalidResponse("Protocol Error: more replies than commands sent")
        except BaseException:
            self._disconnect()
            raise
        return out

    def read_response(self, last: bool = False) -> Any:
        """One reply, an error reply raised (as redis-py's `Connection.read_response` does)."""
        (reply,) = self.read(1, last)
        if isinstance(reply, rexc.ResponseError):
            raise reply
        return reply

    def can_read(self, timeout: float = 0) -> bool:
        """True when a reply (or part of one, or an EOF) is waiting, within `timeout` seconds."""
        sock = self.sock
        if sock is None or socket_of(self.conn) is not sock:
            self._disconnect()
            raise rexc.ConnectionError(_SERVER_CLOSED)
        if self.reader.has_data():
            return True
        try:
            if self._fd < 0 and sock.pending():  # TLS: decrypted bytes the kernel no longer shows
                return True
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(timeout * 1000))
        except (OSError, ValueError) as exc:
            self._disconnect()
            raise rexc.ConnectionError(f"Error while reading from {_where(self.conn)}: {exc.args}") from exc

    def _pushed(self, message: Any) -> None:
        """A push message (a maintenance notice) came before the reply: redis-py's handler takes it."""
        if self._on_push is None:
            raise rexc.InvalidResponse(f"Protocol Error: a push message on a connection without a handler: {message!r}")
        self._on_push(message)
        if socket_of(self.conn) is not self.sock:  # the handler disconnected (the endpoint moves)
            raise rexc.ConnectionError(_SERVER_CLOSED)

    def _receive(self) -> None:
        try:
            data = self.sock.recv(_RECV_SIZE)
        except TimeoutError as exc:  # socket.timeout
            if exc.errno == errno.ETIMEDOUT:  # from the OS: the connection is dead, not slow
                raise rexc.ConnectionError(f"Error while reading from {_where(self.conn)} : {exc.args}") from exc
            raise rexc.TimeoutError(f"Timeout reading from {_where(self.conn)}") from exc
        except OSError as exc:
            raise rexc.ConnectionError(f"Error while reading from {_where(self.conn)} : {exc.args}") from exc
        if not data:
            raise rexc.ConnectionError(_SERVER_CLOSED)
        self.reader.feed(data)

    def _disconnect(self) -> None:
        self.sock = self.reader = None
        try:
            self.conn.disconnect()
        except Exception:
            pass


def _write_error(exc: BaseException) -> BaseException:
    """The error redis-py's `send_packed_command` raises for `exc` (same classes, same texts)."""
    if isinstance(exc, TimeoutError):
        if exc.errno == errno.ETIMEDOUT:
            return rexc.ConnectionError(f"Error {exc.errno} while writing to socket. {exc.strerror}.")
        return rexc.TimeoutError("Timeout writing to socket")
    if isinstance(exc, OSError):
        if len(exc.args) == 1:
            number, message = "UNKNOWN", exc.args[0]
        else:
            number, message = exc.args[0], exc.args[1]
        return rexc.ConnectionError(f"Error {number} while writing to socket. {message}.")
    return exc


def _where(conn: Any) -> str:
    path = getattr(conn, "path", None)
    return path if path else f"{conn.host}:{conn.port}"
