"""`Backoff` and `retry`: the one way this project waits between retries.

`Backoff` is a pure sequence of delays (no clock, no sleeping, no Twisted),
so the same object serves a synchronous loop that sleeps for
`next_delay()` and a reactor loop that hands it to `callLater`. `retry()` is
the synchronous loop most callers need: call until it works, until the
exception is not one to retry, or until time or tries run out.

It lives beside the layers because the interface server may import
`channels_core.layers` but nothing else of `channels_core`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Backoff", "retry"]


class Backoff:
    """Delays growing by `factor` from `initial` up to `maximum`; `reset()` after a success.

        backoff = Backoff(0.05, 2.0)
        while True:
            try:
                work()
            except OSError:
                time.sleep(backoff.next_delay())
                continue
            backoff.reset()

    `jitter` (0 to 1) shortens each delay by up to that fraction, at random,
    so processes that failed together do not all retry in the same instant;
    a delay never exceeds `maximum`.
    """

    def __init__(self, initial: float, maximum: float, factor: float = 2.0, jitter: float = 0.0) -> None:
        if initial < 0 or maximum < initial:
            raise ValueError(f"need 0 <= initial <= maximum, not initial={initial!r}, maximum={maximum!r}")
        if factor < 1:
            raise ValueError(f"factor must be at least 1, not {factor!r}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), not {jitter!r}")
        self.initial = float(initial)
        self.maximum = float(maximum)
        # A float: an int factor would compute an exact, ever larger integer power.
        self.factor = float(factor)
        self.jitter = jitter
        self.attempts = 0
        """How many delays were handed out since the last reset (the failures in a row)."""

    def delay(self, attempt: int) -> float:
        """The delay before retry number `attempt` (0 for the first), without jitter."""
        try:
            return min(self.initial * self.factor**attempt, self.maximum)
        except OverflowError:
            return self.maximum

    def next_delay(self) -> float:
        """The delay to wait now; the one after it is `factor` times longer (up to `maximum`)."""
        delay = self.delay(self.attempts)
        self.attempts += 1
        if self.jitter:
            delay *= 1 - self.jitter * random.random()
        return delay

    def reset(self) -> None:
        """Start again from `initial`: the thing retried works again."""
        self.attempts = 0

    def __repr__(self) -> str:
        return f"Backoff({self.initial}, {self.maximum}, factor={self.factor}, jitter={self.jitter})"


def retry(
    call: Callable[[], Any],
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    backoff: Backoff,
    *,
    timeout: float | None = None,
    tries: int | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> bool:
    """Call `call()` until it returns; True if it did, False if `retry_on` kept being raised.

    It gives up after `timeout` seconds (counted from the first call) or
    `tries` calls, whichever comes first; with neither it retries forever.
    Exceptions other than `retry_on` propagate at once. No sleep runs past
    the deadline: the last call is made at the deadline. `sleep` may be an
    interruptible wait, such as `threading.Event().wait`.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    made = 0
    while True:
        try:
            call()
            return True
        except retry_on:
            made += 1
            if tries is not None and made >= tries:
                return False
            delay = backoff.next_delay()
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                delay = min(delay, remaining)
            sleep(delay)
