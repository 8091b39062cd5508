"""The interface server's action log as Django's runserver prints it, on the `django.server` logger.

`runserver` passes a `RequestLogger` to `interface_server.server.Server`,
which calls it for every completed HTTP response and every WebSocket
handshake, connect, reject and disconnect.
"""

from __future__ import annotations

import logging
import time
from http.server import BaseHTTPRequestHandler
from typing import Any


class RequestLogger:
    """The server's action logger: Django-runserver-style lines on the `django.server` logger.

        [21/Nov/2026 12:00:00] "GET /path HTTP/1.1" 200 1234
        [21/Nov/2026 12:00:01] WebSocket CONNECT /ws/echo/ [127.0.0.1:50123]

    Django's default logging sends `django.server` to stderr, coloured by status.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("django.server")

    def __call__(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        extra: dict[str, Any] = {"request": None, "server_time": _server_time()}
        if protocol == "http" and action == "complete":
            target = details.get("path") or "/"
            query = details.get("query_string")
            if isinstance(query, bytes):
                query = query.decode("latin-1")
            if query:
                target = f"{target}?{query}"
            request_line = f"{details.get('method', '-')} {target}"
            version = details.get("http_version")
            if version:
                request_line += f" HTTP/{version}" if not str(version).startswith("HTTP/") else f" {version}"
            status = details.get("status")
            size = details.get("size")
            extra["status_code"] = status
            log = self.logger.info
            if isinstance(status, int) and status >= 500:
                log = self.logger.error
            elif isinstance(status, int) and status >= 400:
                log = self.logger.warning
            log(
                '"%s" %s %s',
                request_line,
                "-" if status is None else status,
                "-" if size is None else size,
                extra=extra,
            )
        elif protocol == "websocket":
            verb, status = _WEBSOCKET_ACTIONS.get(action, (None, None))
            if verb is None:
                return
            if status:
                extra["status_code"] = status
            log = self.logger.warning if action == "rejected" else self.logger.info
            log("WebSocket %s %s [%s]", verb, details.get("path"), details.get("client") or "-", extra=extra)


_WEBSOCKET_ACTIONS = {
    "connecting": ("HANDSHAKING", None),
    "connected": ("CONNECT", 101),
    "rejected": ("REJECT", 403),
    "disconnected": ("DISCONNECT", None),
}


def _server_time() -> str:
    """The time as Django's runserver prints it: 21/Nov/2026 12:00:00 (English month, local time)."""
    year, month, day, hh, mm, ss, *_ = time.localtime()
    return f"{day:02d}/{BaseHTTPRequestHandler.monthname[month]}/{year:04d} {hh:02d}:{mm:02d}:{ss:02d}"
