"""An in-memory layer with an echo application in a thread of the server process itself.

`interface-server tests.interface_server.inmemory_echo:channel_layer` runs the
real server against the in-memory layer: HTTP requests are answered with
their path and body, WebSockets are accepted and echoed.
"""

from __future__ import annotations

import threading

from channels_core.layers import InMemoryChannelLayer

channel_layer = InMemoryChannelLayer(capacity=1000)

_CHANNELS = ["http.request", "websocket.connect", "websocket.receive", "websocket.disconnect"]


def _serve() -> None:
    while True:
        channel, message = channel_layer.receive(_CHANNELS, block=True)
        if channel == "http.request":
            body = message["body"]
            if "body_channel" in message:
                while True:
                    _, chunk = channel_layer.receive([message["body_channel"]], block=True)
                    if chunk is None:
                        continue
                    body += chunk.get("content", b"")
                    if not chunk.get("more_content"):
                        break
            content = message["path"].encode() + b"\n" + body
            channel_layer.send(message["reply_channel"], {"status": 200, "content": content})
        elif channel == "websocket.connect":
            channel_layer.send(message["reply_channel"], {"accept": True})
        elif channel == "websocket.receive":
            reply = {"text": message["text"]} if message["text"] is not None else {"bytes": message["bytes"]}
            channel_layer.send(message["reply_channel"], reply)


threading.Thread(target=_serve, name="echo-app", daemon=True).start()
