"""Trickle timeouts: how long an HTTP client may take to send a request, and to stay idle between them.

A client that sends its request one byte at a time (slowloris), a body at
1 byte/s, or nothing at all holds a socket, a file descriptor and some
memory for as long as the server lets it. daphne 1.4.2 and 4.x let it
forever. This server gives each phase of a connection a deadline:

- ``keepalive``: a connection waiting for its next request (a fresh one
  that never sent a byte too) is closed silently after
  `keepalive_timeout` (`request_header_timeout` for a fresh connection);
  while a response is still queued for it, only once the client has taken
  none of it for a whole `keepalive_timeout` (then aborted);
- ``closing``: a connection the server closes after a response gets the
  same: it is aborted once it takes nothing for `keepalive_timeout`;
- ``header``: from the first byte of a request, its whole head must arrive
  within `request_header_timeout` (408, then close);
- ``body``: no gap between body bytes longer than `request_body_timeout`,
  and once the body has taken `request_body_timeout`, an average of at
  least `request_body_min_rate` bytes/s since it started (408, then close;
  an application already reading the body gets `http.disconnect`).
  Time spent with the socket paused by the server (its channel full) is
  not held against the client;
- none while the application works on a complete request (`http_timeout`
  covers that) or after the upgrade to WebSocket (pings cover that).

Cost: one `DelayedCall` per connection, moved when a phase starts (a later
deadline costs nothing: the call re-arms itself when it fires early) and
never touched per byte; body bytes only add to a counter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

KEEPALIVE = "keepalive"
HEADER = "header"
BODY = "body"
CLOSING = "closing"


class Deadline:
    """One reactor timer that can be moved cheaply: `arm(seconds)`, `disarm()`; `expired()` runs when due."""

    __slots__ = ("clock", "expired", "due", "call")

    def __init__(self, clock: Any, expired: Callable[[], None]) -> None:
        self.clock = clock
        self.expired = expired
        self.due: float | None = None
        self.call: Any = None

    def arm(self, seconds: float) -> None:
        """Run `expired()` `seconds` from now (replacing any earlier deadline)."""
        self.arm_at(self.clock.seconds() + seconds)

    def arm_at(self, when: float) -> None:
        self.due = when
        call = self.call
        if call is None or not call.active():
            self.call = self.clock.callLater(max(0.0, when - self.clock.seconds()), self._fire)
        elif call.getTime() > when:
            call.reset(max(0.0, when - self.clock.seconds()))
        # else: the call fires first and re-arms itself for what is left (no heap work now).

    def disarm(self) -> None:
        """No deadline; the pending call (if any) fires once and does nothing (cheaper than cancelling)."""
        self.due = None

    def cancel(self) -> None:
        """Stop for good (the connection is gone)."""
        self.due = None
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None

    def _fire(self) -> None:
        self.call = None
        if self.due is None:
            return
        remaining = self.due - self.clock.seconds()
        if remaining > 0:
            self.call = self.clock.callLater(remaining, self._fire)
            return
        self.due = None
        self.expired()


class BodyPace:
    """The pace of one request body: the longest gap and, past the first timeout, the average rate.

    Pure bookkeeping on the times it is given, so it is tested without a reactor.
    """

    __slots__ = ("timeout", "min_rate", "started", "last", "received")

    def __init__(self, timeout: float, min_rate: float, now: float) -> None:
        self.timeout = timeout
        self.min_rate = min_rate
        self.started = now
        self.last = now
        self.received = 0

    def data(self, now: float, size: int) -> None:
        self.received += size
        self.last = now

    def restart(self, now: float) -> None:
        """Forget the pace so far (the server had paused the socket: the client could not send)."""
        self.started = now
        self.last = now
        self.received = 0

    def next_check(self) -> float:
        """The earliest time at which `too_slow` can become true if no more bytes arrive."""
        gap_due = self.last + self.timeout
        if self.min_rate <= 0:
            return gap_due
        rate_due = self.started + max(self.timeout, self.received / self.min_rate)
        return min(gap_due, rate_due)

    def too_slow(self, now: float) -> str | None:
        """Why the body is too slow at `now`, or None."""
        if now - self.last >= self.timeout:
            return f"no body bytes for {now - self.last:.1f}s (--request-body-timeout {self.timeout:g})"
        elapsed = now - self.started
        if self.min_rate > 0 and elapsed >= self.timeout and self.received <= self.min_rate * elapsed:
            return (
                f"body averaging {self.received / elapsed:.0f} B/s over {elapsed:.1f}s"
                f" (--request-body-min-rate {self.min_rate:g})"
            )
        return None


class ConnectionTimeouts:
    """The trickle deadlines of one HTTP connection; `timed_out(phase, why)` is called when one passes.

    The connection reports its events: `data()` for every read, `request_head()`
    when a request head is complete, `body_bytes(n)`, `request_complete()`,
    `waiting(next_request_started)` once a response is done, and `stop()`.
    `is_reading()` tells whether the server is reading the socket (a paused
    socket does not count against the body's pace); `queued()` gives the
    bytes the process holds for the client and those plus the kernel's send
    queue (a response still being taken is not idleness).
    """

    __slots__ = ("config", "clock", "timed_out", "is_reading", "queued", "deadline", "phase", "pace", "last_queued")

    def __init__(
        self,
        config: Any,
        clock: Any,
        timed_out: Callable[[str, str], None],
        is_reading: Callable[[], bool],
        queued: Callable[[], tuple[int, int]] = lambda: (0, 0),
    ) -> None:
        self.config = config
        self.clock = clock
        self.timed_out = timed_out
        self.is_reading = is_reading
        self.queued = queued
        self.deadline = Deadline(clock, self._expired)
        self.phase: str | None = None
        self.pace: BodyPace | None = None
        self.last_queued: int | None = None
        # A fresh connection gets the header timeout to send its first byte (and then its head).
        self.phase = KEEPALIVE
        self.deadline.arm(config.request_header_timeout)

    def data(self) -> None:
        """Bytes arrived: the first byte of a request starts its header deadline."""
        if self.phase == KEEPALIVE:
            self.phase = HEADER
            self.deadline.arm(self.config.request_header_timeout)

    def request_head(self) -> None:
        """A request head is complete: its body (if any) is timed from now."""
        self.phase = BODY
        self.pace = BodyPace(self.config.request_body_timeout, self.config.request_body_min_rate, self.clock.seconds())
        self.deadline.arm_at(self.pace.next_check())

    def body_bytes(self, size: int) -> None:
        if self.pace is not None:
            self.pace.data(self.clock.seconds(), size)

    def request_complete(self) -> None:
        """The request is all in: no client deadline while the application works on it."""
        self.phase = None
        self.pace = None
        self.deadline.disarm()

    def waiting(self, next_request_started: bool) -> None:
        """A response is complete and the connection stays open for the next request."""
        self.pace = None
        self.last_queued = None
        if next_request_started:
            self.phase = HEADER
            self.deadline.arm(self.config.request_header_timeout)
        else:
            self.phase = KEEPALIVE
            self.deadline.arm(self.config.keepalive_timeout)

    def closing(self) -> None:
        """The server is closing the connection: give the client `keepalive_timeout` to take what is queued."""
        self.phase = CLOSING
        self.pace = None
        self.last_queued = None
        self.deadline.arm(self.config.keepalive_timeout)

    def stop(self) -> None:
        self.phase = None
        self.pace = None
        self.deadline.cancel()

    def _expired(self) -> None:
        phase = self.phase
        if phase in (KEEPALIVE, CLOSING):
            # A response still being downloaded is not idleness: wait on while the client takes some of it.
            # Progress is counted on the process's buffer plus the kernel's send queue: the kernel only
            # takes more from the process once a good part of its own queue is free.
            held, pending = self.queued()
            if held and (self.last_queued is None or pending < self.last_queued):
                self.last_queued = pending
                self.deadline.arm(self.config.keepalive_timeout)
                return
        if phase == BODY and self.pace is not None:
            now = self.clock.seconds()
            if not self.is_reading():
                self.pace.restart(now)
                self.deadline.arm_at(self.pace.next_check())
                return
            why = self.pace.too_slow(now)
            if why is None:
                self.deadline.arm_at(self.pace.next_check())
                return
            self.timed_out(BODY, why)
        elif phase == HEADER:
            if not self.is_reading():  # the server paused the socket: the rest of the head cannot arrive
                self.deadline.arm(self.config.request_header_timeout)
                return
            self.timed_out(HEADER, f"request head not complete within {self.config.request_header_timeout:g}s")
        elif phase == KEEPALIVE:
            self.timed_out(KEEPALIVE, "idle: no request started in time")
        elif phase == CLOSING:
            self.timed_out(CLOSING, f"did not take the last response within {self.config.keepalive_timeout:g}s")
