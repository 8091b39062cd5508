"""The websocket-shootout's `json` protocol, shared by both stacks' consumers.

A client sends `{"type": "echo", "payload": P}` and gets the same text back, or
`{"type": "broadcast", "payload": P}`: every connected client then gets
`{"type": "broadcast", "payload": P}` and the sender `{"type": "broadcastResult", "payload": P}`.
"""

from __future__ import annotations

import json

GROUP = "shootout"


def answer(text: str) -> tuple[str | None, str]:
    """For a client's frame: (the text to broadcast to the group or None, the text to send back to the sender)."""
    if text.startswith('{"type":"echo"'):  # the load generator's own spelling: echo without parsing
        return None, text
    message = json.loads(text)
    if message["type"] == "echo":
        return None, text
    if message["type"] == "broadcast":
        payload = json.dumps(message["payload"], separators=(",", ":"))
        return (
            '{"type":"broadcast","payload":' + payload + "}",
            '{"type":"broadcastResult","payload":' + payload + "}",
        )
    raise ValueError(f"unknown message type {message['type']!r}")
