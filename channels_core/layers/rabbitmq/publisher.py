"""Sending: one confirm-mode connection per layer, shared by every thread under a lock.

pika's `BlockingConnection` is not thread-safe, so the worker's threads take
turns; a publish holds the lock for one round trip (the broker's confirm),
which is what makes `ChannelFull` exact: the broker nacks a publish over the
queue's `x-max-length` (`reject-publish`), and the sender learns it before
`send` returns. A publish is `mandatory`: if its queue does not exist (never
declared on this connection, expired, or flushed), the broker returns it,
and the publisher declares the queue and publishes once more.

A publish interrupted by a broken connection is not retried: the broker may
have queued it, and sending it again could deliver it twice. `send` raises
`LayerConnectionError`; the next call reconnects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pika
import pika.exceptions as pexc

from ..errors import ChannelFull, LayerConfigurationError, LayerConnectionError
from .declare import Declarer
from .pipelined import PipelinedChannel, coalesce_writes

CONNECTION_ERRORS = (pexc.AMQPConnectionError, pexc.AMQPChannelError, pexc.StreamLostError, OSError)

PRECONDITION_FAILED = 406


def broker_refusal(exc: pexc.ChannelClosedByBroker) -> Exception:
    """The layer error for a channel the broker closed: a settings mismatch is a configuration error.

    RabbitMQ refuses to declare a queue with arguments other than those it
    was created with (406 PRECONDITION_FAILED, "inequivalent arg"): another
    process runs with a different `expiry`, `capacity`, `channel_capacity`
    or `queue_expiry` under the same prefix. Waiting cannot fix that.
    """
    if exc.reply_code == PRECONDITION_FAILED:
        return LayerConfigurationError(
            f"RabbitMQ refused a queue declaration: {exc.reply_text}. Every process sharing a prefix must use "
            "the same expiry, capacity, channel_capacity and queue_expiry (flush() or a new prefix to change them)"
        )
    return LayerConnectionError(f"RabbitMQ closed the channel: {exc!r}")


class Publisher:
    """Publishes with confirms; declares queues on demand; reconnects lazily after a failure."""

    def __init__(self, parameters: pika.ConnectionParameters, declarer: Declarer) -> None:
        self.parameters = parameters
        self.declarer = declarer
        self.lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        self._pipelined: PipelinedChannel | None = None
        self._extra: dict[str, object] = {}  # name -> an extra channel of this connection (groups)
        self._last_io = 0.0
        self.on_reset: list[Callable[[], None]] = []
        """Called when a new connection opens: what callers declared on the old one is unknown now."""

    def _open(self):
        if self._channel is not None and self._channel.is_open and self._connection.is_open:
            if time.monotonic() - self._last_io > 1.0:
                self._service()  # an idle connection may have been closed by the broker meanwhile
            if self._channel is not None:
                self._last_io = time.monotonic()
                return self._channel
        self._drop()
        try:
            self._connection = pika.BlockingConnection(self.parameters)
            coalesce_writes(self._connection)
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
            self._pipelined = PipelinedChannel(self._connection)
        except CONNECTION_ERRORS as exc:
            self._drop()
            raise LayerConnectionError(f"Cannot connect to RabbitMQ: {exc!r}") from exc
        self.declarer.reset()
        for reset in self.on_reset:
            reset()
        self._last_io = time.monotonic()
        return self._channel

    @property
    def connection(self):
        """The open connection (the caller holds `lock`, inside `run`)."""
        return self._connection

    def extra_channel(self, name: str, confirm: bool = False):
        """A channel `name` of the open connection (in confirm mode if `confirm`), opened again if the broker
        closed it (hold `lock`)."""
        channel = self._extra.get(name)
        if channel is None or not channel.is_open:
            channel = self._extra[name] = self._connection.channel()
            if confirm:
                channel.confirm_delivery()
        return channel

    def _service(self) -> None:
        """Let pika read what arrived and send heartbeats; a closed connection is dropped, to reopen."""
        try:
            self._connection.process_data_events(time_limit=0)
        except CONNECTION_ERRORS:
            self._drop()
        else:
            self._last_io = time.monotonic()

    def keepalive(self) -> None:
        """Service an idle connection's heartbeats (called by the receiving thread every second).

        pika's blocking connection only sends heartbeats while the caller is
        in one of its methods, so a process that sends nothing for two
        heartbeat intervals (60 s by default) would have its sending
        connection closed by the broker and its next `send` fail.
        """
        if self.lock.acquire(blocking=False):
            try:
                if self._connection is not None and time.monotonic() - self._last_io > 1.0:
                    self._service()
            finally:
                self.lock.release()

    def _drop(self) -> None:
        connection, self._connection, self._channel, self._pipelined = self._connection, None, None, None
        self._extra.clear()
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - already broken; nothing to save
                pass

    def publish(self, queue: str, body: bytes, properties: pika.BasicProperties, full_message: str) -> None:
        """Queue `body` on `queue`; `ChannelFull(full_message)` if the queue is at its length limit."""
        with self.lock:
            self.run(lambda channel: self._publish(channel, queue, body, properties, full_message))

    def _publish(self, channel, queue, body, properties, full_message) -> None:
        if self.declarer.due(queue):
            self.declarer.declare(channel, queue)
        # On the pipelined channel: its frames leave in one write where pika's `basic_publish` makes three
        # (a send() each, on loopback a third of a send's time), then one wait for the confirm.
        refused, unroutable = self._pipelined.publish_all(queue, [body], properties)
        if unroutable:
            # The queue is gone (expired, or flushed by another process): declare it and try again.
            self.declarer.declare(channel, queue)
            refused, unroutable = self._pipelined.publish_all(queue, [body], properties)
            if unroutable:
                raise LayerConnectionError(f"RabbitMQ did not route to {queue!r} right after declaring it")
        if refused:
            self._refused(channel, queue, full_message)

    def _refused(self, channel, queue: str, full_message: str) -> None:
        """The broker nacked a publish: `ChannelFull` if the queue is at its limit, else a broker in trouble.

        A nack also comes from a broker that is shutting down (seen with
        `rabbitmqctl stop_app` under traffic): calling that `ChannelFull`
        would make an interface server answer 503 "busy" for an outage.
        """
        capacity = self.declarer.arguments_for(queue)["x-max-length"]
        try:
            waiting = channel.queue_declare(queue, passive=True).method.message_count
        except CONNECTION_ERRORS as exc:
            raise LayerConnectionError(f"RabbitMQ refused a message to {queue!r} and went away: {exc!r}") from exc
        if waiting >= capacity:
            raise ChannelFull(full_message)
        raise LayerConnectionError(f"RabbitMQ refused a message to {queue!r} with {waiting} of {capacity} waiting")

    def publish_many(
        self, queue: str, bodies: list[bytes], properties: pika.BasicProperties, capacity: int, full_message: str
    ) -> None:
        """Queue every one of `messages` on `queue`, or none if they do not all fit: `ChannelFull(full_message)`.

        The queue's length is read (declaring it: one round trip) and the
        batch refused if it would not fit, then every message is published
        at once and the confirms awaited together. AMQP has no multi-message
        publish, so if another process fills the queue between the two
        steps, the broker refuses the batch's tail: `ChannelFull` then says
        how many were queued. Within one process the lock rules that out.
        """
        with self.lock:
            self.run(lambda channel: self._publish_many(channel, queue, bodies, properties, capacity, full_message))

    def _publish_many(self, channel, queue, bodies, properties, capacity, full_message) -> None:
        waiting = self.declarer.declare(channel, queue)
        if waiting + len(bodies) > capacity:
            raise ChannelFull(f"{full_message}: {waiting} waiting, {len(bodies)} more do not fit")
        refused, unroutable = self._pipelined.publish_all(queue, bodies, properties)
        if refused or unroutable:
            queued = len(bodies) - refused - unroutable
            raise ChannelFull(f"{full_message}: another sender filled it during this batch; {queued} were queued")

    def run(self, work: Callable):
        """`work(channel)` on the open channel (the caller holds `lock`); trouble is `LayerConnectionError`."""
        channel = self._open()
        try:
            return work(channel)
        except (ChannelFull, LayerConnectionError):
            raise
        except pexc.ChannelClosedByBroker as exc:
            self._drop()
            raise broker_refusal(exc) from exc
        except CONNECTION_ERRORS as exc:
            self._drop()
            raise LayerConnectionError(f"Lost the RabbitMQ connection: {exc!r}") from exc

    def close(self) -> None:
        with self.lock:
            self._drop()
