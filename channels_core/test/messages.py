"""`make_message`: a `Message` shaped as the interface server sends it, for calling one consumer directly.

    from channels_core.test import make_message

    message = make_message("websocket.connect", path="/chat/", headers=[[b"origin", b"http://example.com"]])
    connect_consumer(message)

`Client` and `WSClient` send through the channel layer and the routing, as a
worker runs a consumer; `make_message` is for the unit test of one consumer
or decorator. The fields the interface server always sends on the channel
are there (`reply_channel`, `path`, `headers`, `order`, ...), so a test
names only what it is about.
"""

from __future__ import annotations

import copy
import secrets
from typing import Any

from ..layers import InMemoryChannelLayer
from ..message import Message

__all__ = ["make_message"]

_PEERS = {"client": ["127.0.0.1", 50000], "server": ["127.0.0.1", 80]}
_HEAD = {"path": "/", "query_string": b"", "root_path": "", "headers": [[b"host", b"testserver"]], **_PEERS}

# What interface_server/wire_messages.py puts in each message, with a test's values.
_FIELDS: dict[str, dict[str, Any]] = {
    "http.request": {"http_version": "1.1", "method": "GET", "scheme": "http", **_HEAD, "body": b""},
    "http.disconnect": {"path": "/"},
    "websocket.connect": {"scheme": "ws", **_HEAD, "order": 0},
    "websocket.receive": {"path": "/", "order": 1, "bytes": None, "text": ""},
    "websocket.disconnect": {"path": "/", "order": 1, "code": 1000},
}


def make_message(channel: str, content: dict[str, Any] | None = None, *, layer: Any = None, **fields: Any) -> Message:
    """A `Message` on `channel`: the interface server's fields for it, replaced by `content`, then `fields`.

    `reply_channel` is a fresh `test.reply.<random>` name (as `Client` uses) unless given;
    `reply_channel=None` leaves it out. The message's layer is `layer`, or a new in-memory one
    (what the consumer sends stays there).
    """
    body: dict[str, Any] = {
        "reply_channel": f"test.reply.{secrets.token_hex(6)}",
        **copy.deepcopy(_FIELDS.get(channel, {})),
    }
    body.update(copy.deepcopy(content or {}))
    body.update(fields)
    if body["reply_channel"] is None:
        del body["reply_channel"]
    return Message(body, channel, layer if layer is not None else InMemoryChannelLayer())
