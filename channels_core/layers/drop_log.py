"""Counting and logging dropped messages without flooding the log.

A process that receives garbage (from a buggy client of the layer, or bytes
pushed straight into Redis) drops it and goes on. Each drop is counted per
channel; the first drop on a channel is logged at once with the channel's
name, then at most one line per `interval` seconds per channel, with the
count since the previous line, so a flood of bad messages costs one log line
a minute, not one per message.
"""

from __future__ import annotations

import logging
import threading
import time

DROP_LOG_INTERVAL = 60.0
"""Seconds between two log lines about the drops of one channel."""


class DropLog:
    """Per-channel drop counters (`counts`, `total`) with rate-limited ERROR lines on `logger`.

    `what` names the dropped thing in the line: "Dropped <what> on channel 'x' (<why>): ...".
    Thread-safe.
    """

    def __init__(
        self, logger: logging.Logger, what: str = "an unreadable element", interval: float = DROP_LOG_INTERVAL
    ) -> None:
        self.logger = logger
        self.what = what
        self.interval = interval
        self.counts: dict[str, int] = {}
        self._last: dict[str, tuple[float, int]] = {}  # channel -> (when logged, its count then)
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def drop(self, channel: str, why: str) -> None:
        """Count one drop on `channel`; log it unless this channel was logged less than `interval` ago."""
        now = time.monotonic()
        with self._lock:
            count = self.counts[channel] = self.counts.get(channel, 0) + 1
            last = self._last.get(channel)
            if last is not None and now - last[0] < self.interval:
                return
            self._last[channel] = (now, count)
        since = "" if last is None else f"; {count - last[1] - 1} more dropped on it since the last report"
        self.logger.error(
            "Dropped %s on channel %r (%s): %d dropped on this channel so far%s",
            self.what,
            channel,
            why,
            count,
            since,
        )
