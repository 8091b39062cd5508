"""A blocking read that an event loop drives: no thread, no polling.

An interface server reads every reply for its clients from one process
channel (`prefix!`). Doing that in a thread costs a GIL hand-off and a
loop wake-up per batch; instead the loop watches this receiver's socket
and calls `read()` when it is readable. The next blocking pop is sent
before the messages are handed back, so Redis collects the next batch
while the loop delivers this one.

The event loop owns the scheduling (retries, watchdog); this class owns
the Redis conversation and never imports one.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from ..errors import LayerConnectionError
from .blocking_pop import REPLY_GRACE
from .connection import NETWORK_ERRORS, Shard
from .decoding import Decoder
from .redis_py_private import socket_of
from .resp import ProtocolError, ReplyError, RespParser

logger = logging.getLogger("channels_core.layers.redis")

_RECV_SIZE = 256 * 1024
_NETWORK_ERRORS = (*NETWORK_ERRORS, ProtocolError)
_NO_LIMIT = 1 << 30


class EventReceiver:
    """Reads the queues `keys` of one Redis server with blocking pops the caller's event loop waits on.

    Use: `start()` (connects and sends the first pop), then watch `fileno()`
    for reading and call `read()` each time it is readable; it returns the
    messages that arrived (maybe none: a pop timed out, or only part of a
    reply is in). Any connection problem raises `LayerConnectionError`:
    stop watching the socket, then `close()`, and `start()` again later. `deadline` is when a healthy connection must
    have answered by (each pop times out after the layer's
    `blocking_timeout`); past it, treat the connection as dead.

    Built by `RedisChannelLayer.event_receiver`: `decoder` turns what is
    popped into messages, `blocking_timeout` (seconds) bounds each pop.
    """

    def __init__(
        self, shard: Shard, keys: Sequence[bytes], decoder: Decoder, blocking_timeout: float, max_messages: int = 100
    ) -> None:
        if shard.tls:
            # An SSL socket can hold decrypted bytes the loop never sees as readable.
            raise NotImplementedError("EventReceiver does not support TLS connections to Redis")
        self.shard = shard
        self.keys = list(keys)
        self.decoder = decoder
        self.max_messages = max_messages
        self.timeout = max(1, math.ceil(blocking_timeout))
        self.deadline = math.inf
        self._conn: Any = None
        self._sock: socket.socket | None = None
        self._parser = RespParser()
        self._blmpop = False
        self._packed_pop: bytes | None = None

    def start(self) -> None:
        """Connect (blocking, bounded by the connect timeout) and send the first pop."""
        self.close()
        conn = self.shard.new_connection()
        try:
            conn.connect()
            if self.shard.clock_offset_ms is None:
                self.shard.handshake()
            self._blmpop = self.max_messages > 1 and self.shard.supports_blmpop
            self._conn = conn
            self._sock = socket_of(conn)
            self._parser = RespParser()
            self._packed_pop = None
            self._send_pop()
        except _NETWORK_ERRORS as exc:
            self.close()
            conn.disconnect()
            raise self.shard.failed(exc) from None
        except LayerConnectionError:
            self.close()
            conn.disconnect()
            raise
        self.shard.succeeded()

    def fileno(self) -> int:
        return self._sock.fileno() if self._sock is not None else -1

    def _send_pop(self) -> None:
        # The same pop every time: packed once per connection. Written with os.write, not
        # socket.sendall: a socket with a timeout polls before every call (one syscall more per
        # reply); sendall only takes what one write could not.
        packed = self._packed_pop
        if packed is None:
            if self._blmpop:
                command = ("BLMPOP", self.timeout, len(self.keys), *self.keys, "LEFT", "COUNT", self.max_messages)
            else:
                command = ("BLPOP", *self.keys, self.timeout)
            packed = self._packed_pop = b"".join(self._conn.pack_commands([command]))
        try:
            written = os.write(self._sock.fileno(), packed)
        except BlockingIOError:
            written = 0
        if written < len(packed):
            self._sock.sendall(packed[written:])
        self.deadline = time.monotonic() + self.timeout + REPLY_GRACE

    def read(self) -> list[tuple[str, dict]]:
        """Call when `fileno()` is readable: the messages that arrived, after sending the next pop."""
        if self._sock is None:
            raise LayerConnectionError("EventReceiver.read() before start()")
        try:
            try:
                # os.read, not sock.recv: the socket has a timeout, and recv would poll first.
                data = os.read(self._sock.fileno(), _RECV_SIZE)
            except BlockingIOError:
                return []  # readable was a false alarm: nothing to read yet
            if not data:
                raise ConnectionError("Redis closed the connection")
            self._parser.feed(data)
            reply = self._parser.get()
            if reply is RespParser.NOTHING:
                return []
            if self._parser.get() is not RespParser.NOTHING:
                raise ProtocolError("more than one reply to one pop")
            if isinstance(reply, ReplyError):
                raise ConnectionError(f"Redis refused the pop: {reply}")
            self._send_pop()
        except _NETWORK_ERRORS as exc:
            # The socket stays open until `close()`: the loop must stop watching it first
            # (epoll cannot unregister a descriptor that is already closed).
            self.deadline = math.inf
            raise self.shard.failed(exc) from None
        if not reply:
            return []  # the pop timed out: the next one is already waiting
        key, elements = reply[0], reply[1]
        if not isinstance(elements, list):
            elements = [elements]
        return self.decoder.unpack_all(key, elements, self.shard, _NO_LIMIT)

    def close(self) -> None:
        """Drop the connection. A pop still waiting is abandoned; a reply already on its way is lost with it."""
        conn, self._conn, self._sock = self._conn, None, None
        self.deadline = math.inf
        if conn is not None:
            try:
                conn.disconnect()
            except Exception:
                pass
