"""The access log (daphne's format) and the action-logger hook."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import IO, Any

ActionLogger = Callable[[str, str, dict[str, Any]], None]


class AccessLogGenerator:
    """An action logger writing one NCSA-style line per event, like daphne 1.x:

    `host - - [21/Nov/2026:12:00:00] "GET /path" 200 1234` for HTTP, and
    `WSCONNECTING`, `WSCONNECT`, `WSREJECT`, `WSDISCONNECT` lines for WebSockets.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        if protocol == "http" and action == "complete":
            self.write_entry(
                details["client"], f"{details['method']} {details['path']}", details["status"], details["size"]
            )
        elif protocol == "websocket":
            verb = {
                "connecting": "WSCONNECTING",
                "rejected": "WSREJECT",
                "connected": "WSCONNECT",
                "disconnected": "WSDISCONNECT",
            }.get(action)
            if verb:
                self.write_entry(details["client"], f"{verb} {details['path']}")

    def write_entry(self, host: str | None, request: str, status: int | None = None, size: int | None = None) -> None:
        when = datetime.datetime.now().strftime("%d/%b/%Y:%H:%M:%S")
        line = '{} - - [{}] "{}" {} {}\n'.format(
            host or "-", when, request, "-" if status is None else status, "-" if size is None else size
        )
        self.stream.write(line)
        self.stream.flush()
