"""`DelayWorker`: takes messages off `asgi.delay`, keeps them in the database, sends them when due.

The loop never polls: it blocks on `asgi.delay` for exactly as long as the
next due row is away (capped at the layer's `blocking_timeout`, so a SIGTERM
is honoured within that), so a message is sent within a few milliseconds of
its due time and an idle server costs one blocking read per
`blocking_timeout`.

Durability: a message taken off `asgi.delay` is written to the database
before the loop can stop; a due row is claimed (deleted) and sent inside one
transaction, and a SIGTERM only takes effect between steps, so stopping and
restarting neither loses nor repeats a message. Two delay servers on one
database never send the same row: the one whose DELETE removed it sends it.
A crash (SIGKILL, power loss) between a send and its commit can repeat the
messages of that one batch; it never loses a stored one.
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
import time
from datetime import timedelta
from typing import Any

from django.db import close_old_connections, connections, transaction
from django.utils import timezone

from channels_core.layers.backoff import Backoff
from channels_core.layers.contract import supports
from channels_core.layers.errors import ChannelFull, MessageTooLarge

from .models import DelayedMessage
from .protocol import DELAY_CHANNEL, InvalidDelayMessage, parse_delay_message

logger = logging.getLogger("channels_core.delay")

_MIN_BACKOFF = 0.05
_MAX_BACKOFF = 2.0
_SHUTDOWN_SAVE_TRIES = 3


def supports_timed_receive(channel_layer: Any) -> bool:
    """True if the layer has `receive_batch(..., block=True, timeout=seconds)`, which the loop needs."""
    if not supports(channel_layer, "batch"):
        return False
    receive_batch = channel_layer.receive_batch
    try:
        return "timeout" in inspect.signature(receive_batch).parameters
    except (TypeError, ValueError):
        return False


class DelayWorker:
    """The delay server's loop over one channel layer.

    `channel_layer` is a layer or a `ChannelLayerWrapper`. A message whose
    target channel is full is rescheduled `retry_delay` ms later, doubling
    up to `max_retry_delay`, and dropped with an error after `max_attempts`
    refusals. Invalid `asgi.delay` messages are logged with the reason and
    skipped. On SIGTERM/SIGINT the current step finishes, then `run`
    returns.
    """

    def __init__(
        self,
        channel_layer: Any,
        batch_size: int = 100,
        signal_handlers: bool = True,
        max_wait: float | None = None,
        retry_delay: float = 100,
        max_retry_delay: float = 10_000,
        max_attempts: int = 20,
    ) -> None:
        if not supports_timed_receive(channel_layer):
            raise TypeError(
                f"{channel_layer} has no receive_batch(..., timeout=): the delay server needs a layer that can "
                "block until the next due time (channels_core.layers.RedisChannelLayer)"
            )
        self.channel_layer = channel_layer
        self.batch_size = batch_size
        self.signal_handlers = signal_handlers
        # Capped so a SIGTERM is seen within one blocking read, as in runworker.
        self.max_wait = float(max_wait if max_wait is not None else getattr(channel_layer, "blocking_timeout", 5.0))
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        # Milliseconds; a row's own attempt count picks the step, so the wait survives a restart.
        self._reschedule_delays = Backoff(min(retry_delay, max_retry_delay), max_retry_delay)
        self.max_attempts = max_attempts
        self.ChannelFull = getattr(channel_layer, "ChannelFull", ChannelFull)
        self.MessageTooLarge = getattr(channel_layer, "MessageTooLarge", MessageTooLarge)
        self.termed = False
        # Taken off asgi.delay, not yet committed to the database.
        self._unsaved: list[DelayedMessage] = []
        self.stored = self.sent = self.rejected = self.rescheduled = self.dropped = 0

    # -- running -----------------------------------------------------------------

    def install_signal_handler(self) -> None:
        signal.signal(signal.SIGTERM, self.sigterm_handler)
        signal.signal(signal.SIGINT, self.sigterm_handler)

    def sigterm_handler(self, signo: int, stack_frame: Any) -> None:
        # Never raise here: an exception in the middle of a read could drop a message already popped.
        if not self.termed:
            self.termed = True
            logger.info("Shutdown requested: finishing the current step (at most %.1fs)", self.max_wait)

    def run(self) -> None:
        """Loop until SIGTERM/SIGINT (or `termed` is set); errors are logged and retried with backoff."""
        if self.signal_handlers:
            self.install_signal_handler()
        logger.info(
            "Listening on %s (pid %d, %d messages waiting in the database)",
            DELAY_CHANNEL,
            os.getpid(),
            DelayedMessage.objects.count(),
        )
        backoff = Backoff(_MIN_BACKOFF, _MAX_BACKOFF)
        while not self.termed:
            try:
                self.step()
            except Exception as exc:
                if not backoff.attempts:
                    logger.error("Delay step failed (%s: %s); retrying with backoff", type(exc).__name__, exc)
                else:
                    logger.debug("Delay step still fails (%s: %s)", type(exc).__name__, exc)
                _reset_database_connections()
                time.sleep(backoff.next_delay())
                continue
            if backoff.attempts:
                logger.warning("Delay server recovered")
                backoff.reset()
        self.shutdown()

    def step(self) -> None:
        """Store what arrives on asgi.delay until the next row is due, then send the due rows."""
        close_old_connections()
        if self._unsaved:
            self._save()
        timeout = self.time_to_next_due()
        batch = self.channel_layer.receive_batch([DELAY_CHANNEL], self.batch_size, block=True, timeout=timeout)
        if batch:
            self.accept([message for _, message in batch])
        self.send_due()

    def shutdown(self) -> None:
        """Commit what was taken off asgi.delay; if the database refuses, hand it back to asgi.delay."""
        backoff = Backoff(_MIN_BACKOFF, _MAX_BACKOFF)
        for _ in range(_SHUTDOWN_SAVE_TRIES):
            if not self._unsaved:
                break
            try:
                self._save()
            except Exception as exc:
                logger.error("Saving %d delayed messages failed (%s)", len(self._unsaved), exc)
                _reset_database_connections()
                time.sleep(backoff.next_delay())
        if self._unsaved:
            self._hand_back()
        logger.info(
            "Delay server stopped: %d stored, %d sent, %d invalid skipped, %d rescheduled, %d dropped",
            self.stored,
            self.sent,
            self.rejected,
            self.rescheduled,
            self.dropped,
        )

    # -- taking messages in --------------------------------------------------------

    def accept(self, messages: list[Any]) -> None:
        """Check and store messages taken off asgi.delay; invalid ones are logged and skipped."""
        now = timezone.now()
        for message in messages:
            try:
                request = parse_delay_message(message)
                row = DelayedMessage(
                    channel_name=request.channel,
                    due_date=now + timedelta(milliseconds=request.delay),
                )
                try:
                    row.set_content(request.content)
                except ValueError as exc:
                    raise InvalidDelayMessage(f"'content' cannot be stored: {exc}") from None
            except InvalidDelayMessage as exc:
                self.rejected += 1
                logger.warning("Skipped an invalid %s message: %s", DELAY_CHANNEL, exc)
                continue
            self._unsaved.append(row)
        self._save()

    def _save(self) -> None:
        if not self._unsaved:
            return
        with transaction.atomic():
            DelayedMessage.objects.bulk_create(self._unsaved)
        self.stored += len(self._unsaved)
        logger.debug("Stored %d delayed messages", len(self._unsaved))
        self._unsaved = []

    def _hand_back(self) -> None:
        """Last resort at shutdown with the database down: put messages back on asgi.delay, not lose them."""
        now = timezone.now()
        handed = 0
        for row in self._unsaved:
            remaining = max(0.0, (row.due_date - now).total_seconds() * 1000)
            message = {"channel": row.channel_name, "delay": remaining, "content": row.get_content()}
            try:
                self.channel_layer.send(DELAY_CHANNEL, message)
            except Exception as exc:
                self.dropped += 1
                logger.error(
                    "Lost a delayed message for %s: database and layer both failed (%s)", row.channel_name, exc
                )
            else:
                handed += 1
        if handed:
            logger.warning("Handed %d unsaved delayed messages back to %s", handed, DELAY_CHANNEL)
        self._unsaved = []

    # -- sending -------------------------------------------------------------------

    def time_to_next_due(self) -> float:
        """Seconds until the next row is due (0 if one is), at most `max_wait`."""
        due = DelayedMessage.objects.order_by("due_date").values_list("due_date", flat=True).first()
        if due is None:
            return self.max_wait
        return min(max(0.0, (due - timezone.now()).total_seconds()), self.max_wait)

    def send_due(self) -> int:
        """Send every row that is due, in due order, one transaction per batch; returns how many were sent."""
        sent_before = self.sent
        while True:
            with transaction.atomic():
                rows = list(DelayedMessage.objects.is_due().order_by("due_date", "id")[: self.batch_size])
                error = self._send_rows(rows)
            if error is not None:
                raise error
            if len(rows) < self.batch_size:
                return self.sent - sent_before

    def _send_rows(self, rows: list[DelayedMessage]) -> Exception | None:
        """Claim and send `rows` inside the caller's transaction.

        Returns the layer error that stopped the batch: the rows sent so far
        are committed as sent, the failed one and the rest stay due.
        """
        full: set[str] = set()
        for row in rows:
            # The claim: only the process whose DELETE removed the row sends it.
            if not DelayedMessage.objects.filter(pk=row.pk).delete()[0]:
                continue
            if row.channel_name in full:
                # Keep per-channel order: nothing overtakes a message refused earlier in this batch.
                self._reschedule(row)
                continue
            try:
                content = row.get_content()
            except ValueError as exc:
                self.dropped += 1
                logger.error(
                    "Dropped delayed message %s for %s: unreadable content (%s)", row.pk, row.channel_name, exc
                )
                continue
            try:
                self.channel_layer.send(row.channel_name, content)
            except self.ChannelFull:
                full.add(row.channel_name)
                self._reschedule(row)
            except (self.MessageTooLarge, TypeError) as exc:
                self.dropped += 1
                logger.error("Dropped delayed message for %s: %s", row.channel_name, exc)
            except Exception as exc:
                # The layer is unreachable (or worse): this row stays due; the batch stops here.
                row.save(force_insert=True)
                return exc
            else:
                self.sent += 1
                logger.debug("Sent delayed message to %s", row.channel_name)
        return None

    def _reschedule(self, row: DelayedMessage) -> None:
        row.attempts += 1
        if row.attempts >= self.max_attempts:
            self.dropped += 1
            logger.error(
                "Dropped delayed message for %s: the channel was full %d times in a row", row.channel_name, row.attempts
            )
            return
        wait = self._reschedule_delays.delay(row.attempts - 1)
        row.due_date = timezone.now() + timedelta(milliseconds=wait)
        row.save(force_insert=True)
        self.rescheduled += 1
        logger.warning(
            "Channel %s is full: delayed message rescheduled in %d ms (attempt %d of %d)",
            row.channel_name,
            wait,
            row.attempts,
            self.max_attempts,
        )


def _reset_database_connections() -> None:
    # After a database error the connection may be unusable; the next query reconnects.
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except Exception:
            pass


Worker = DelayWorker
"""The Channels 1.x name (`channels.delay.worker.Worker`)."""
