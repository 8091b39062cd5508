"""The shape of the ASGI 1.0 messages an interface server sends, checked before any consumer runs.

A message on `http.request`, `http.disconnect` or `websocket.*` that lacks a
key every consumer relies on, or has one of the wrong type (a bug in another
interface server, or bytes pushed into the layer by hand), would otherwise
fail inside Django or the consumer with a traceback per message. The worker
drops it instead, counted and logged once per channel (`DropLog`), and
answers the client when the message names a usable reply channel (400 for a
request, a refused handshake for a connect), so nobody waits for a timeout.

Only the keys consumers read are checked, with the types the ASGI 1.0 spec
gives (str or bytes where servers differ); extra keys are allowed, and only
`reply_channel` (plus `method` and `path` for a request, which the Django
handler cannot do without) is required, so the hand-made messages of tests
still pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_STR = (str,)
_BYTES_OR_STR = (bytes, str)
_OPTIONAL_BYTES = (bytes, type(None))
_OPTIONAL_STR = (str, type(None))
_INT = (int,)

# channel -> {key: (required, allowed types)}
_SPEC: dict[str, dict[str, tuple[bool, tuple[type, ...]]]] = {
    "http.request": {
        "reply_channel": (True, _STR),
        "method": (True, _STR),
        "path": (True, _STR),
        "query_string": (False, _BYTES_OR_STR),
        "http_version": (False, _STR),
        "scheme": (False, _STR),
        "root_path": (False, _STR),
        "body": (False, (bytes,)),
        "body_channel": (False, _OPTIONAL_STR),
    },
    "http.disconnect": {"reply_channel": (True, _STR), "path": (False, _STR)},
    "websocket.connect": {
        "reply_channel": (True, _STR),
        "path": (False, _STR),
        "query_string": (False, _BYTES_OR_STR),
        "root_path": (False, _STR),
        "order": (False, _INT),
    },
    "websocket.receive": {
        "reply_channel": (True, _STR),
        "path": (False, _STR),
        "text": (False, _OPTIONAL_STR),
        "bytes": (False, _OPTIONAL_BYTES),
        "order": (False, _INT),
    },
    "websocket.disconnect": {
        "reply_channel": (True, _STR),
        "path": (False, _STR),
        "code": (False, _INT),
        "order": (False, _INT),
    },
}
_WITH_HEADERS = ("http.request", "websocket.connect")


def problem(channel: str, content: Any) -> str | None:
    """What is wrong with a message received on `channel`, or None if it can be handed to a consumer.

    Any channel: the message must be a dict. The ASGI channels above: the keys and types listed.
    """
    if not isinstance(content, Mapping):
        return f"a {type(content).__name__}, not a dict"
    spec = _SPEC.get(channel)
    if spec is None:
        return None
    for key, (required, types) in spec.items():
        if key not in content:
            if required:
                return f"no {key!r}"
            continue
        value = content[key]
        # bool is an int, but never a valid order or close code.
        if not isinstance(value, types) or (types is _INT and isinstance(value, bool)):
            return f"{key!r} is a {type(value).__name__}"
    if channel in _WITH_HEADERS and "headers" in content and not _headers_ok(content["headers"]):
        return "'headers' is not a list of [name, value] pairs of bytes"
    return None


def _headers_ok(headers: Any) -> bool:
    if not isinstance(headers, (list, tuple)):
        return False
    for pair in headers:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            return False
        if not all(isinstance(part, _BYTES_OR_STR) for part in pair):
            return False
    return True
