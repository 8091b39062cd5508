"""Bounded output per connection: a client that does not read cannot make the server hold its replies forever.

The application may keep sending to a client that never reads its socket;
once the kernel's send buffer is full, every byte waits in Twisted's write
buffer, in this process's memory, without bound. After each write the
bytes Twisted holds for the connection (`compat.write_buffer_size`) are
compared with `--max-output-buffer` (default 1 MiB, as AnyCable and
Centrifugo do); past it:

- a WebSocket gets a close frame 1008 (policy violation), nothing more is
  queued for it, and it is aborted (TCP reset, buffers freed) after
  `ABORT_GRACE` seconds, since a client that does not read will not read
  the close frame either; the application gets `websocket.disconnect`;
- an HTTP response (a streaming one: a plain one is written whole) is
  aborted at once; the application gets `http.disconnect`.

Each cut is logged once (WARNING) and counted in
`server.counters["output_limit_closed"]`. Memory held per such client is
thus at most the limit plus one message.
"""

from __future__ import annotations

import logging
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


def websocket_is_cut(protocol: Any) -> bool:
    """True once `protocol` went past its limit: further frames are dropped, not queued."""
    return getattr(protocol, "_output_limit_state", None) == _CUT


def check_websocket(protocol: Any) -> None:
    """After a write to a WebSocket: close and schedule the abort if it holds more than the limit."""
    if getattr(protocol, "_output_limit_state", None) is not None:
        return
    server = protocol.server
    limit = server.config.max_output_buffer
    size = over_limit(protocol.transport, limit)
    if size is None:
        return
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
    reactor.callLater(ABORT_GRACE, _abort, protocol.transport)


def check_http(protocol: Any) -> bool:
    """After a write of a response: abort the connection if it holds more than the limit; True if it did."""
    server = protocol.server
    limit = server.config.max_output_buffer
    size = over_limit(protocol.transport, limit)
    if size is None:
        return False
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
    return True


def _abort(transport: Any) -> None:
    if getattr(transport, "connected", False):
        transport.abortConnection()
