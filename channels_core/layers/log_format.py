"""JSON log lines for log shippers: `JsonFormatter` and `setup_logging(level, "json")`.

Shared by the interface server (`interface-server --log-format json`) and the
workers (`runworker --log-format json`). It lives in `channels_core.layers`
because that is the one part of the project both may import
(tests/test_boundaries.py: the interface server imports only
`channels_core.layers`, the workers never import the interface server), and,
like the rest of the layers, it needs neither Django nor Twisted: the standard
library only.

Each record becomes one line holding one JSON object::

    {"time": "2026-12-07T02:10:00.123Z", "level": "INFO", "logger": "interface_server.access",
     "message": "127.0.0.1 GET /chat/ 200", "client": "127.0.0.1", "channel_type": "http.request",
     "method": "GET", "path": "/chat/", "status": 200, "size": 123, "duration_ms": 1.9}

`time` is UTC (ISO 8601, milliseconds), `level`, `logger` and `message` are
always there; `exception` (the formatted traceback) when the record has one.
Anything passed in `extra=` is added as its own key (values JSON cannot hold
are written with `str()`), so a caller adds fields with
`logger.info("...", extra={"channel_type": "websocket.receive", "client": ...})`.
The field names used by this project: `channel_type`, `channel`, `client`,
`method`, `path`, `status`, `size`, `duration_ms`, `reply_channel`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

LOG_FORMATS = ("text", "json")
"""The values of `--log-format`."""

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
"""The text format both the interface server and the workers used before JSON existed (the default)."""

# Everything a LogRecord carries by itself; whatever else is on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: time, level, logger, message, then the record's extra fields.

    The JSON is written with `ensure_ascii=False` and no newlines inside
    (a message's own newlines are escaped by JSON), so a shipper can split
    the stream on newlines.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str, separators=(",", ":"))


def _utc_iso(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def setup_logging(level: int, log_format: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """Send the root logger's records at `level` and above to `stream` (stderr), as text or JSON lines.

    Replaces the root logger's handlers (a process calls it once, at start),
    so a library's earlier `basicConfig` cannot double every line. Returns
    the handler.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
