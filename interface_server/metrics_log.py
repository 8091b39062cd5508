"""The access log as JSON lines (`--log-format json`): one object per HTTP response and WebSocket event.

The same events as `access.AccessLogGenerator` (daphne's text lines), written
by `channels_core.layers.log_format.JsonFormatter` to the access log's
stream, with the fields a log shipper indexes: `channel_type`
(`http.request`, `websocket.connect`, `websocket.disconnect`), `client`,
`path`, and for HTTP `method`, `status`, `size` (response body bytes) and
`duration_ms` (request head to response end). Logger name:
`interface_server.access`, level INFO.
"""

from __future__ import annotations

import logging
from typing import IO, Any

from channels_core.layers.log_format import JsonFormatter

LOGGER_NAME = "interface_server.access"

_WEBSOCKET = {
    "connecting": ("websocket.connect", "WSCONNECTING"),
    "rejected": ("websocket.connect", "WSREJECT"),
    "connected": ("websocket.connect", "WSCONNECT"),
    "disconnected": ("websocket.disconnect", "WSDISCONNECT"),
}


class JsonAccessLog:
    """An action logger (`Server(action_logger=...)`) writing one JSON line per event to `stream`."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.formatter = JsonFormatter()

    def __call__(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        if protocol == "http" and action == "complete":
            method = details.get("method")
            method = method.decode("latin-1") if isinstance(method, bytes) else method
            fields = {
                "channel_type": "http.request",
                "client": details.get("client"),
                "method": method,
                "path": details.get("path"),
                "status": details.get("status"),
                "size": details.get("size"),
            }
            taken = details.get("time_taken")
            if taken is not None:
                fields["duration_ms"] = round(taken * 1000, 3)
            self.write(f"{method} {details.get('path')} {details.get('status')}", fields)
        elif protocol == "websocket" and action in _WEBSOCKET:
            channel_type, verb = _WEBSOCKET[action]
            fields = {"channel_type": channel_type, "client": details.get("client"), "path": details.get("path")}
            self.write(f"{verb} {details.get('path')}", fields)

    def write(self, message: str, fields: dict[str, Any]) -> None:
        record = logging.LogRecord(LOGGER_NAME, logging.INFO, __file__, 0, message, (), None)
        record.__dict__.update(fields)
        self.stream.write(self.formatter.format(record) + "\n")
        self.stream.flush()
