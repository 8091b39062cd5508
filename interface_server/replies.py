"""The reply reader: one blocking read of this process's `prefix!` channel at all times.

Every reply for every client of this server process arrives on one
process channel, read with a blocking receive (never a timer poll). A
layer that offers `event_receiver()` (the Redis layer) is read inside the
reactor: the reactor watches the receiver's socket, so a reply costs no
thread switch and no wake-up. Any other layer is read by a dedicated
thread that hands batches to the reactor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReadDescriptor
from zope.interface import implementer

from channels_core.layers.backoff import Backoff
from channels_core.layers.contract import supports

logger = logging.getLogger("interface_server.replies")

Batch = list[tuple[str, dict]]

_MIN_RETRY = 0.05
_MAX_RETRY = 2.0


class ReplyReader(threading.Thread):
    """Reads `prefix!` and calls `deliver(batch)` in the reactor thread."""

    def __init__(self, layer: Any, prefix: str, deliver: Callable[[Batch], None], call_in_reactor: Callable) -> None:
        super().__init__(name="reply-reader", daemon=True)
        self.layer = layer
        self.prefix = prefix
        self.deliver = deliver
        self.call_in_reactor = call_in_reactor
        self.stopping = threading.Event()
        self.batched = supports(layer, "batch")

    def run(self) -> None:
        backoff = Backoff(_MIN_RETRY, _MAX_RETRY)
        while not self.stopping.is_set():
            try:
                batch = self._receive()
            except Exception as exc:
                # A layer that raises from a blocking receive (not ours: it retries itself).
                delay = backoff.next_delay()
                logger.warning("Reading replies from %s failed (%s); retrying in %.2fs", self.prefix, exc, delay)
                self.stopping.wait(delay)
                continue
            backoff.reset()
            if batch:
                self.call_in_reactor(self.deliver, batch)

    def _receive(self) -> Batch:
        if self.batched:
            return self.layer.receive_batch([self.prefix], 100, block=True)
        channel, message = self.layer.receive([self.prefix], block=True)
        return [(channel, message)] if channel is not None else []

    def stop(self, timeout: float = 0) -> None:
        self.stopping.set()
        if timeout:
            deadline = time.monotonic() + timeout
            self.join(max(0.0, deadline - time.monotonic()))


@implementer(IReadDescriptor)
class ReactorReplyReader:
    """Reads `prefix!` through the layer's `event_receiver` from inside the reactor.

    Connecting (`receiver.start()`: a TCP connect, a handshake, the first
    pop) blocks, so it runs in a thread (`run_in_thread`, Twisted's
    `deferToThread` by default); only `addReader` happens in the reactor.
    When Redis cannot be reached it retries with backoff, logging the
    outage once at WARNING and the recovery with its length; a pop that
    stays unanswered past its deadline is taken for a dead connection and
    reconnected.
    """

    def __init__(
        self,
        layer: Any,
        prefix: str,
        deliver: Callable[[Batch], None],
        reactor: Any,
        run_in_thread: Callable[..., Any] | None = None,
    ) -> None:
        self.receiver = layer.event_receiver([prefix], 100)
        self.prefix = prefix
        self.deliver = deliver
        self.reactor = reactor
        if run_in_thread is None:
            from twisted.internet.threads import deferToThread

            run_in_thread = deferToThread
        self.run_in_thread = run_in_thread
        self.stopping = False
        self.reading = False
        self.connecting = False
        self.backoff = Backoff(_MIN_RETRY, _MAX_RETRY)
        self.retry_call: Any = None
        self.watchdog: Any = None
        self.outage_since: float | None = None  # the reader lost Redis at (None: it reads)

    def start(self) -> None:
        """Connect in a thread, then watch the socket in the reactor."""
        self.retry_call = None
        if self.stopping or self.connecting:
            return
        self.connecting = True
        self.run_in_thread(self.receiver.start).addCallbacks(self._started, self._not_started)

    def _started(self, _: Any) -> None:
        self.connecting = False
        if self.stopping:
            self.receiver.close()
            return
        self.backoff.reset()
        if self.outage_since is not None:
            logger.warning(
                "Reading replies from %s again after %.1f s", self.prefix, time.monotonic() - self.outage_since
            )
            self.outage_since = None
        self.reactor.addReader(self)
        self.reading = True
        self._arm_watchdog()

    def _not_started(self, failure: Any) -> None:
        self.connecting = False
        if self.stopping:
            return
        self._lost(failure.getErrorMessage())
        delay = self.backoff.next_delay()
        logger.debug("Cannot read replies from %s yet (%s); retrying in %.2fs", self.prefix, failure.value, delay)
        self.retry_call = self.reactor.callLater(delay, self.start)

    def _lost(self, why: str) -> None:
        """Log an outage once, when it starts."""
        if self.outage_since is None:
            self.outage_since = time.monotonic()
            logger.warning("Lost the reply read on %s (%s); reconnecting until Redis answers", self.prefix, why)

    def _arm_watchdog(self) -> None:
        delay = max(0.0, self.receiver.deadline - time.monotonic())
        if self.watchdog is not None and self.watchdog.active():
            self.watchdog.reset(delay)
        else:
            self.watchdog = self.reactor.callLater(delay, self._unanswered)

    def _unanswered(self) -> None:
        self.watchdog = None
        if self.reading and time.monotonic() >= self.receiver.deadline:
            logger.warning("No answer from Redis to the reply read on %s in time; reconnecting", self.prefix)
            self._lost("no answer in time")
            self._restart()
        elif self.reading:
            self._arm_watchdog()

    def _restart(self) -> None:
        self._unwatch()
        self.receiver.close()
        if not self.stopping:
            self.retry_call = self.reactor.callLater(0, self.start)

    def _unwatch(self) -> None:
        if self.reading:
            self.reading = False
            self.reactor.removeReader(self)

    # IReadDescriptor

    def fileno(self) -> int:
        return self.receiver.fileno()

    def doRead(self) -> None:
        try:
            batch = self.receiver.read()
        except Exception as exc:
            self._lost(f"{type(exc).__name__}: {exc}")
            self._restart()
            return
        # Each read sends the next pop: move the deadline along with it.
        self._arm_watchdog()
        if batch:
            self.deliver(batch)

    def connectionLost(self, reason: Any) -> None:
        # The reactor found the descriptor broken (it has already stopped watching it).
        self.reading = False
        self.receiver.close()
        if not self.stopping:
            self._lost("the connection broke")
            self.retry_call = self.reactor.callLater(self.backoff.next_delay(), self.start)

    def logPrefix(self) -> str:
        return "reply-reader"

    def stop(self, timeout: float = 0) -> None:
        self.stopping = True
        self._unwatch()
        for call in (self.retry_call, self.watchdog):
            if call is not None and call.active():
                call.cancel()
        self.receiver.close()
