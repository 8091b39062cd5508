"""The private names of redis-py this package reads: `Connection._sock`, `Connection._parser` and its parsers.

redis-py offers no public way to get a connection's socket, and this package
needs it three times: to `poll()` it (an idle pooled connection that is
readable was closed by the server; a blocking pop waits on several sockets
at once), to hand it to an event loop (`EventReceiver`), which watches the
descriptor and reads replies itself, and for the lean command path
(`lean`), which writes commands and reads replies on it. `_sock` is None
until `connect()` and after `disconnect()`.

The lean path reads replies the way the connection's own parser
(`Connection._parser`) would, so it asks which one that is: redis-py's
pure-Python RESP2 or RESP3 parser or its hiredis parser (the classes
`_RESP2Parser`, `_RESP3Parser`, `_HiredisParser` of `redis._parsers`; any
other parser keeps redis-py's path). It turns an error reply into the
exception redis-py would raise for it (`NoScriptError` for NOSCRIPT,
`NoPermissionError` for NOPERM, `BusyLoadingError` for LOADING, MOVED/ASK in
a cluster...) with that parser's `parse_error(text)` (a classmethod of
redis-py's `BaseParser`), and hands a RESP3 push message (a maintenance
notice) to its `handle_push_response(message)`, as redis-py's
`read_response` does before reading on (the hiredis parser knows a push by
its `_hiredis_PushNotificationType`).

Checked on redis-py 5.0 and 8.x (`setup.cfg` allows `redis>=5.0`);
`tests/channels_core/layers/test_redis_py_private.py` fails when an upgrade renames or
changes them, and runs on redis-py 5 as well (`test_redis_py_versions.py`).
"""

from __future__ import annotations

import inspect
import socket
from collections.abc import Callable
from typing import Any

from redis._parsers import _HiredisParser, _RESP2Parser, _RESP3Parser


def socket_of(connection: Any) -> socket.socket | None:
    """The socket of a redis-py `Connection`, or None when it is not connected."""
    return connection._sock


def reply_format(connection: Any) -> str | None:
    """How redis-py reads this connection's replies now: "resp2", "resp3", "hiredis", or None (another parser).

    RESP3 read by the pure-Python parser counts only from redis-py 5.1 on
    (its parser has `pubsub_push_handler_func`): 5.0's returned sets as
    `set`s and called pushes' handler differently.
    """
    parser = connection._parser
    kind = type(parser)
    if kind is _RESP2Parser:
        return "resp2"
    if kind is _RESP3Parser:
        return "resp3" if hasattr(parser, "pubsub_push_handler_func") else None
    if kind is _HiredisParser:
        return "hiredis"
    return None


def error_parser(connection: Any) -> Callable[[str], Exception]:
    """What turns an error reply's text (`"NOSCRIPT No matching script..."`) into redis-py's exception for it."""
    return connection._parser.parse_error


def push_handler(connection: Any) -> Callable[[Any], Any] | None:
    """What redis-py calls with a RESP3 push message read off this connection (None: it has none)."""
    handle = getattr(connection._parser, "handle_push_response", None)
    if handle is not None and "disable_decoding" in inspect.signature(handle).parameters:
        # redis-py 5.1 to 6: handle_push_response(response, disable_decoding, push_request)
        return lambda message: handle(message, False, False)
    return handle


def hiredis_push_type(connection: Any) -> type | None:
    """The class of the push messages redis-py's hiredis parser hands to `push_handler` (once connected).

    None (redis-py before 6, hiredis before 3.2): that parser returns a push message as a reply.
    """
    return getattr(connection._parser, "_hiredis_PushNotificationType", None)
