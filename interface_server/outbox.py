"""Sends made during one reactor turn go to the layer together, in order.

A run of consecutive messages for the same channel (fifty `http.request`s
arriving in one turn under load) becomes one `send_many` call: one Redis
round trip instead of fifty, and the reactor blocks once instead of fifty
times. A run the channel cannot take whole falls back to one send per
message, so exactly the messages that do not fit get their error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor

from channels_core.layers.contract import supports

logger = logging.getLogger("interface_server")

ErrorCallback = Callable[[Exception], None]


class Outbox:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.pending: list[tuple[str, dict, ErrorCallback]] = []
        self.scheduled = False
        self.batches = supports(layer, "batch")
        self.ChannelFull = getattr(layer, "ChannelFull", None) or _Never

    def put(self, channel: str, message: dict, on_error: ErrorCallback) -> None:
        """Queue a send for the end of this reactor turn; `on_error(exc)` runs if it fails."""
        self.pending.append((channel, message, on_error))
        if not self.scheduled:
            self.scheduled = True
            reactor.callLater(0, self.flush)

    def flush(self) -> None:
        self.scheduled = False
        pending, self.pending = self.pending, []
        start = 0
        while start < len(pending):
            channel = pending[start][0]
            end = start + 1
            while end < len(pending) and pending[end][0] == channel:
                end += 1
            self._send_run(channel, pending[start:end])
            start = end

    def _send_run(self, channel: str, run: list[tuple[str, dict, ErrorCallback]]) -> None:
        if len(run) > 1 and self.batches:
            try:
                self.layer.send_many(channel, [message for _, message, _ in run])
                return
            except self.ChannelFull:
                pass  # some may still fit: send one by one below
            except Exception as exc:
                for _, _, on_error in run:
                    _report(on_error, exc)
                return
        for _, message, on_error in run:
            try:
                self.layer.send(channel, message)
            except Exception as exc:
                _report(on_error, exc)


def _report(on_error: ErrorCallback, exc: Exception) -> None:
    try:
        on_error(exc)
    except Exception:
        logger.exception("Handling a failed send raised")


class _Never(Exception):
    pass
