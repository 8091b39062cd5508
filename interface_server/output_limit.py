"""Bounded output per connection: a client that does not read cannot make the server hold its replies forever.

The application may keep sending to a client that never reads its socket;
once the kernel's send buffer is full, every byte waits in Twisted's write
buffer, in this process's memory, without bound. Before each write the
bytes Twisted still holds for the connection (`compat.write_buffer_size`)
are compared with `--max-output-buffer` (default 1 MiB, as AnyCable and
Centrifugo do). Checking before rather than after means one message larger
than the limit still goes out to a client that reads it; the client is cut
when the next write finds more than the limit still waiting. Past it:

- a WebSocket gets a close frame 1008 (policy violation), nothing more is
  queued for it, and it is aborted (TCP reset, buffers freed) after
  `ABORT_GRACE` seconds, since a client that does not read will not read
  the close frame either; the application gets `websocket.disconnect`;
- an HTTP response (a streaming one: a plain one is written whole) is
  aborted at once; the application gets `http.disconnect`.

Each cut is logged once (WARNING) and counted in
`server.counters["output_limit_closed"]`. Memory held per such client is
thus at most the limit plus one message (plus the kernel's socket buffer,
which is not this process's). A burst larger than the limit plus the
socket buffer, sent to one client within one reactor turn (a batch of
replies), also closes it: raise the limit for applications that do that.
"""

from __future__ import annotations

import fcntl
import logging
import termios
from typing import Any

from twisted.internet import reactor

from . import compat
from .counters import count

logger = logging.getLogger("interface_server.output")

ABORT_GRACE = 1.0
CLOSE_POLICY_VIOLATION = 1008
COUNTER = "output_limit_closed"

# The state of a WebSocket past its limit, kept on the protocol (absent: within it).
_CLOSING = "closing"  # the close frame is being written
_CUT = "cut"  # nothing more is written; the abort is scheduled


def over_limit(transport: Any, limit: int) -> int | None:
    """The bytes held for `transport` when they exceed `limit`, else None."""
    size = compat.write_buffer_size(transport)
    return size if size > limit else None


def unsent_bytes(transport: Any) -> int:
    """Bytes in the kernel's send queue of a TCP transport not yet acknowledged by the client (0 if unknown).

    `TIOCOUTQ` (Linux's `SIOCOUTQ` for TCP sockets) on the transport's public
    `getHandle()`. The kernel wakes a writer only once a good share of its
    queue is free, so a client reading slowly shows progress here before it
    shows in Twisted's own buffer.
    """
    try:
        handle = transport.getHandle()
        return int.from_bytes(fcntl.ioctl(handle.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"), "little", signed=True)
    except Exception:
        return 0


def websocket_may_write(protocol: Any, idle: bool = False) -> bool:
    """Before a frame is written: False if it must be dropped (the client is, or now gets, cut).

    The check is on what is already queued, so one message larger than the
    limit still goes out whole to a client that reads; the next one finds it
    still queued only if the client does not. `idle`: the caller knows
    nothing is queued (the size is not read again).
    """
    state = getattr(protocol, "_output_limit_state", None)
    if state == _CUT:
        return False
    if state == _CLOSING or idle:
        return True  # the close frame itself, or nothing queued
    server = protocol.server
    limit = server.config.max_output_buffer
    size = over_limit(protocol.transport, limit)
    if size is None:
        return True
    protocol._output_limit_state = _CLOSING
    count(server, COUNTER)
    logger.warning(
        "WebSocket %s does not read: %d bytes queued, over --max-output-buffer %d; closing it with %d",
        getattr(protocol, "reply_channel", None),
        size,
        limit,
        CLOSE_POLICY_VIOLATION,
    )
    try:
        protocol.sendCloseFrame(code=CLOSE_POLICY_VIOLATION, reasonUtf8=b"output buffer full", isReply=False)
    except Exception:
        logger.debug("Could not send the close frame", exc_info=True)
    protocol._output_limit_state = _CUT
    getattr(protocol.transport, "reactor", reactor).callLater(ABORT_GRACE, _abort, protocol.transport)
    return False


def http_may_write(protocol: Any) -> bool:
    """Before a response part is written: False (and the connection aborted) if the client let too much pile up."""
    server = protocol.server
    limit = server.config.max_output_buffer
    size = over_limit(protocol.transport, limit)
    if size is None:
        return True
    count(server, COUNTER)
    request = getattr(protocol, "request", None)
    logger.warning(
        "HTTP client %s does not read its response to %s: %d bytes queued, over --max-output-buffer %d; aborting",
        getattr(protocol, "client", None),
        getattr(getattr(request, "info", None), "path", None),
        size,
        limit,
    )
    protocol.transport.abortConnection()
    return False


def _abort(transport: Any) -> None:
    if getattr(transport, "connected", False):
        transport.abortConnection()
