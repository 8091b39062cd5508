"""The RabbitMQ channel layer: one queue per channel queue, publisher confirms, consumers with manual acks."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence

import pika

from .. import names, reliable
from ..base import BaseChannelLayer
from ..capacity import Rule
from ..errors import ChannelFull, LayerConnectionError
from ..serialization import UndecodableMessage
from .declare import Declarer, queue_arguments_for
from .flush import flush_prefix
from .groups import NOT_FOUND, GroupBroker, flush_groups, wait_for_lock
from .ordering import BUSY, OrderStates
from .publisher import Publisher
from .queues import queue_name
from .receiver import Receiver
from .settings import connection_parameters, resolve_url
from .stats import GLOBAL, StatsBook, flush_stats, stats_name
from .stats import PUBLISH_INTERVAL as _STATS_INTERVAL

logger = logging.getLogger("channels_core.layers.rabbitmq")

_BLOCK_TIMEOUT = 5.0
_CALL_TIMEOUT = 10.0


class RabbitMQChannelLayer(BaseChannelLayer):
    """ASGI 1.0 channel layer on a RabbitMQ broker (AMQP 0-9-1, through pika).

    `url` defaults to `$RABBITMQ_URL`, then `$CLOUDAMQP_URL`, then the local
    broker as guest; `amqps://` connects with TLS. `prefix` starts every
    queue name, so several layers (or test runs) share a broker and `flush`
    deletes only its own. `queue_expiry` (default: the larger of 600 s and
    twice `expiry`) is how long a queue nobody uses survives.
    `prefetch_normal` and `prefetch_single` bound how many deliveries one
    process holds unacknowledged per normal channel and per `?`/`!` queue
    (see `.receiver` for why that loses and duplicates nothing).
    `confirm_acks=False` trades one round trip per receive from a normal
    channel for a duplicate in the rare case a connection breaks as a
    message is taken (`.receiver`; `?` and `!` queues never need it).

    Each instance opens two connections, one to send (confirm mode, shared
    under a lock) and one to receive (driven by the receiving caller or a
    background thread, see `.receiver`), so any number of threads may call
    it; a third, for reading statistics, opens at the first read. Groups,
    ordering and statistics: `.groups`, `.ordering`, `.stats`.
    """

    extensions = ["groups", "flush", "batch", "ordering", "queue_wait", "statistics"]

    def __init__(
        self,
        url: str | None = None,
        prefix: str = "asgi:",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[Rule, int] | None = None,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        heartbeat: int | None = 30,
        connection_name: str | None = None,
        blocking_timeout: float = _BLOCK_TIMEOUT,
        queue_expiry: float | None = None,
        prefetch_normal: int = 1,
        prefetch_single: int = 100,
        idle_cancel: float = 30.0,
        confirm_acks: bool = True,
        at_least_once=None,
    ) -> None:
        reliable.refuse("RabbitMQChannelLayer", at_least_once)
        super().__init__(expiry, group_expiry, capacity, channel_capacity, symmetric_encryption_keys)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {prefix!r}")
        self.url = resolve_url(url)
        self.prefix = prefix
        self.blocking_timeout = blocking_timeout
        self.queue_expiry = max(2 * expiry, 600.0) if queue_expiry is None else queue_expiry
        if self.queue_expiry < 2 * expiry:
            raise ValueError(f"queue_expiry ({self.queue_expiry}) must be at least twice expiry ({expiry})")
        name = connection_name or f"channels-core {socket.gethostname()} pid {os.getpid()}"
        arguments_for = queue_arguments_for(expiry, self.queue_expiry, self.capacity_rules.get, prefix)

        def parameters(role: str) -> pika.ConnectionParameters:
            return connection_parameters(self.url, heartbeat, f"{name} ({role})")

        self._waits = threading.local()  # .last: the queue waits of this thread's last receive
        self._publisher = Publisher(parameters("send"), Declarer(prefix, self.queue_expiry, arguments_for))
        self._groups = GroupBroker(prefix, group_expiry)
        self._orders = OrderStates(prefix, group_expiry)
        self._publisher.on_reset.append(self._groups.reset)
        self._stats = StatsBook(prefix)
        # Statistics are read on a connection of their own, opened at the first read: an interface server's
        # health probe reads them every second, and must not hold up its sends for the read's round trips.
        self._stats_reader = Publisher(parameters("statistics"), Declarer(prefix, self.queue_expiry, arguments_for))
        self._stats_timer: threading.Timer | None = None

        def prefetch_for(queue: str) -> int:
            single = queue.endswith("!") or "?" in queue[len(prefix) :]
            return prefetch_single if single else prefetch_normal

        self._receiver = Receiver(
            parameters("receive"),
            Declarer(prefix, self.queue_expiry, arguments_for),
            prefix,
            expiry,
            prefetch_for,
            idle_cancel,
            confirm_acks,
            self._keepalive,
        )

    # -- sending ---------------------------------------------------------------

    def send(self, channel: str, message: dict) -> None:
        """Queue `message` on `channel`; `ChannelFull` when its queue is at capacity (the broker says so)."""
        names.validate_channel_name(channel)
        body = self.serializer.dumps(message)
        list_name = names.list_name(channel)
        try:
            self._publisher.publish(
                queue_name(self.prefix, list_name), body, self._properties(channel), self._full_message(channel)
            )
        except ChannelFull:
            self._stats.count(list_name, full=1)
            raise
        self._stats.count(list_name, messages=1)
        self._stats_due()

    def send_many(self, channel: str, messages: Sequence[dict]) -> None:
        """Send `messages` to `channel` in order, all or none (see `Publisher.publish_many` for the one race)."""
        names.validate_channel_name(channel)
        bodies = [self.serializer.dumps(message) for message in messages]
        if not bodies:
            return
        list_name = names.list_name(channel)
        try:
            self._publisher.publish_many(
                queue_name(self.prefix, list_name),
                bodies,
                self._properties(channel),
                self.capacity_rules.get(list_name),
                self._full_message(channel),
            )
        except ChannelFull:
            self._stats.count(list_name, full=1)
            raise
        self._stats.count(list_name, messages=len(bodies))
        self._stats_due()

    @staticmethod
    def _properties(channel: str) -> pika.BasicProperties:
        headers: dict = {"t": int(time.time() * 1_000_000)}  # pika has no float field: microseconds
        if names.is_process_channel(channel):
            headers["c"] = channel  # every channel of the process shares the queue `prefix!`
        return pika.BasicProperties(headers=headers)

    def _full_message(self, channel: str) -> str:
        return f"Channel {channel!r} is full (capacity {self.capacity_rules.get(names.list_name(channel))})"

    # -- receiving -------------------------------------------------------------

    def receive(self, channels: Iterable[str], block: bool = False) -> tuple[str | None, dict | None]:
        """`(channel, message)` or `(None, None)`; a blocking receive waits up to `blocking_timeout` seconds."""
        got = self.receive_batch(channels, 1, block)
        return got[0] if got else (None, None)

    def receive_batch(
        self, channels: Iterable[str], max_messages: int = 100, block: bool = False, timeout: float | None = None
    ) -> list[tuple[str, dict]]:
        """Up to `max_messages` messages; blocking waits for the first up to `timeout` (default `blocking_timeout`)."""
        wanted = names.validate_receive_channels(channels)
        queues = [queue_name(self.prefix, name) for name in wanted]
        deadline = time.monotonic() + (self.blocking_timeout if timeout is None else max(0.0, timeout))
        block = block and deadline > time.monotonic()
        while True:
            remaining = deadline - time.monotonic()
            try:
                if block:
                    got = self._receiver.take_waiting(queues, max_messages, deadline, max(remaining, 1.0))
                else:
                    got = self._receiver.take(queues, max_messages, True, _CALL_TIMEOUT)
            except LayerConnectionError:
                if not block or remaining <= 0:
                    if block:
                        return []
                    raise
                time.sleep(min(0.2, max(remaining, 0)))  # the receiver thread is reconnecting with its own backoff
                continue
            messages = []
            waits = self._waits.last = []
            now = time.time()
            for channel, body, sent in got:
                try:
                    messages.append((channel, self.serializer.loads(body)))
                except UndecodableMessage as exc:
                    logger.warning("Dropped an undecodable message on %r: %s", channel, exc)
                    continue
                waits.append(max(0.0, now - sent))
            if messages or not block or time.monotonic() >= deadline:
                return messages

    # -- groups (see `.groups` for how the broker does the fan-out) ---------------

    def group_add(self, group: str, channel: str) -> None:
        """Add `channel` to `group` for `group_expiry` seconds (adding it again renews that)."""
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        real = queue_name(self.prefix, names.list_name(channel))
        publisher = self._publisher

        def add(amqp) -> None:
            if publisher.declarer.due(real):
                publisher.declarer.declare(amqp, real)  # dead-letters to a missing queue would be dropped
            return self._groups.add(amqp, publisher.connection, group, channel, real)

        with publisher.lock:
            self._run_groups(add)
            if self._groups.should_prune(group):
                # Records pile up as members are added again: list the group now and then, which prunes them.
                publisher.run(lambda _amqp: self._members(group, probe=False))

    def group_discard(self, group: str, channel: str) -> None:
        """Remove `channel` from `group` (deletes its member queue); a no-op if it is not a member."""
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        with self._publisher.lock:
            self._publisher.run(lambda amqp: self._groups.discard(amqp, group, channel))

    def group_channels(self, group: str) -> list[str]:
        """The live members of `group` (exact: each is checked against the broker)."""
        names.validate_group_name(group)

        def attempt():
            with self._publisher.lock:
                self._evict_if_due()
                return self._publisher.run(lambda _amqp: self._members(group))

        return wait_for_lock(attempt)

    def send_group(self, group: str, message: dict) -> None:
        """One publish; the broker copies it to every member. A full member is skipped, never raises."""
        names.validate_group_name(group)
        body = self.serializer.dumps(message)
        sent = int(time.time() * 1_000_000)
        publisher = self._publisher

        with publisher.lock:
            self._evict_if_due()
            self._run_groups(lambda amqp: self._groups.send(amqp, publisher.connection, group, body, sent))

    def _run_groups(self, work):
        """`publisher.run(work)`, once more after a 404: another process's flush deleted what was declared."""
        missing = object()

        def attempt(amqp):
            try:
                return work(amqp)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != NOT_FOUND:
                    raise
                return missing

        got = self._publisher.run(attempt)
        if got is missing:
            self._groups.reset()
            self._publisher.declarer.reset()
            got = self._publisher.run(work)
        return got

    def _evict_if_due(self) -> None:
        if self._groups.evict_due():
            self._run_groups(lambda amqp: self._groups.evict(amqp, self._publisher.connection))

    def _members(self, group: str, probe: bool = True) -> list[str] | None:
        publisher = self._publisher
        side = publisher.extra_channel("records")
        try:
            return self._groups.members(side, lambda: publisher.extra_channel("probe"), group, probe)
        finally:
            if not side.is_open:
                publisher.extra_channel("records")

    # -- per-connection ordering (the `ordering` extension, see .ordering) ----------

    def order_claim(
        self, reply_channel: str, order: int, channel: str, message: dict, timeout: float, max_parked: int
    ) -> str:
        """`run`, `parked`, `stale`, `stuck` or `dead` (`.order_book`); five round trips under a lock."""
        names.validate_channel_name(reply_channel)
        payload = self._park(channel, message)
        return self._ordered(reply_channel, OrderStates.claim_step(int(order), payload, timeout, max_parked))

    def order_advance(self, reply_channel: str, order: int) -> tuple[str, dict] | None:
        """Mark `order` done; the parked `(channel, message)` that is now next, taken out, or None."""
        names.validate_channel_name(reply_channel)
        return self._unpark(self._ordered(reply_channel, OrderStates.advance_step(int(order))))

    def order_forget(self, reply_channel: str) -> None:
        """Drop the connection's ordering state."""
        names.validate_channel_name(reply_channel)
        self._ordered(reply_channel, OrderStates.forget_step)

    def _ordered(self, reply_channel: str, step):
        publisher = self._publisher

        def attempt():
            with publisher.lock:
                got = publisher.run(
                    lambda _amqp: self._orders.locked(
                        publisher.extra_channel("order", confirm=True), reply_channel, step
                    )
                )
            return None if got is BUSY else (got,)

        return wait_for_lock(attempt)[0]

    # -- flush -------------------------------------------------------------------

    def flush(self) -> int:
        """Delete every queue under this layer's prefix (whoever declared it) and its groups; the number deleted."""

        def flush(amqp) -> int:
            return flush_groups(amqp, self.prefix, self.group_expiry) + flush_prefix(
                amqp, self.prefix, self.queue_expiry
            )

        with self._publisher.lock:
            deleted = self._publisher.run(flush) + self._publisher.run(lambda amqp: flush_stats(amqp, self.prefix))
            self._publisher.declarer.reset()
            self._groups.reset()
            self._stats.forget()
        return deleted

    # -- statistics (see `.stats`: others' counts are up to a second late) ---------------

    def global_statistics(self) -> dict[str, int]:
        """`messages_count` and `channel_full_count` over every process (others' up to a second late)."""
        messages, full = self._read_stats().get(GLOBAL, (0, 0))
        return {"messages_count": messages, "channel_full_count": full}

    def channel_statistics(self, channel: str) -> dict[str, float]:
        """`channel`'s counters and `messages_pending` (ready in its queue); no `messages_max_age` (`.stats`)."""
        names.validate_channel_name(channel)
        list_name = names.list_name(channel)
        messages, full = self._read_stats().get(stats_name(list_name), (0, 0))
        reader = self._stats_reader

        def pending(_amqp) -> int:
            probe = reader.extra_channel("probe")
            try:
                return probe.queue_declare(queue_name(self.prefix, list_name), passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != NOT_FOUND:
                    raise
                return 0  # never declared, expired or flushed: nothing waits

        with reader.lock:
            waiting = reader.run(pending)
        return {"messages_count": messages, "channel_full_count": full, "messages_pending": waiting}

    def _read_stats(self) -> dict[str, list[int]]:
        reader = self._stats_reader

        def attempt():
            with reader.lock:
                return reader.run(lambda _amqp: self._stats.read(lambda: reader.extra_channel("stats")))

        return wait_for_lock(attempt)

    def _publish_stats(self) -> None:
        with self._publisher.lock:
            self._publisher.run(self._stats.publish)

    def _stats_due(self) -> None:
        """After counting: publish now if the last snapshot is a second old, else make sure one follows."""
        if self._stats.due():
            self._publish_stats_quietly()  # the message was sent: nothing here may make `send` raise
        elif self._stats_timer is None:
            # A process that only sends has no receiving thread to publish its counts a second later.
            timer = self._stats_timer = threading.Timer(_STATS_INTERVAL, self._timed_stats)
            timer.daemon = True
            timer.start()

    def _timed_stats(self) -> None:
        self._stats_timer = None
        self._publish_stats_quietly()

    def _publish_stats_quietly(self) -> None:
        try:
            self._publish_stats()
        except Exception as exc:  # noqa: BLE001 - counts must never break the caller; they go with the next one
            logger.warning("Could not publish this process's statistics to RabbitMQ: %r", exc)

    def _keepalive(self) -> None:
        """Every second from the receiving thread: the sending connection's heartbeats, and a due snapshot."""
        self._publisher.keepalive()
        if self._stats.due() and self._publisher.lock.acquire(blocking=False):
            try:
                self._publisher.run(self._stats.publish)
            except Exception as exc:  # noqa: BLE001 - the receiving thread must not reconnect for this
                logger.warning("Could not publish this process's statistics to RabbitMQ: %r", exc)
            finally:
                self._publisher.lock.release()

    # -- for operators -------------------------------------------------------------

    def last_queue_waits(self) -> list[float]:
        """Seconds each message of this thread's last `receive`/`receive_batch` waited, in order.

        From the sender's clock (the time it put in the message) to this
        process's: machines whose clocks disagree see the difference added.
        """
        return list(getattr(self._waits, "last", ()))

    @property
    def lost_in_flight(self) -> int:
        """Messages taken from the broker whose ack it never confirmed: dropped, never returned (see `.receiver`)."""
        return self._receiver.lost_in_flight

    def close(self) -> None:
        timer = self._stats_timer
        if timer is not None:
            timer.cancel()
        if self._stats.dirty:
            try:
                self._publish_stats()  # this process's last counts, for the others to read
            except LayerConnectionError:
                pass
        self._receiver.close()
        self._publisher.close()
        self._stats_reader.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} prefix={self.prefix!r} expiry={self.expiry} capacity={self.capacity}>"


RabbitmqChannelLayer = RabbitMQChannelLayer
"""The spelling of the third-party `asgi_rabbitmq` package."""
