"""Receiving: one consumer connection per layer, driven by one thread at a time under `_io_lock`.

pika's `BlockingConnection` is not thread-safe, and a blocking receive must
not hold a lock that senders need (they have their own connection), so the
receiving connection is driven by whoever holds `_io_lock`: a caller that
finds it free runs its work itself (`_drive_jobs`), and a blocked receive
drives it until its message arrives (`_lead`), so a worker's receive loop
has no thread hand-off on a message's path. The I/O thread
(`rabbitmq-layer-receiver`) drives it the rest of the time: it leaves it to
callers for `_GRACE` after each use and while one waits to lead, and takes
it back for heartbeats, reconnection, renewing queues in use and cancelling
idle consumers. A caller that finds it busy hands its job over (`_call`)
and sleeps on a condition until served. Nothing polls: whoever drives
sleeps in `select` until the broker sends something or a job wakes it.

**At most once, and nothing lost by a process that stops reading.** Each
queue a process reads gets one `basic.consume` with manual acks and a
prefetch limit (`prefetch_normal` for normal channels, where several
workers compete, so one busy worker cannot hoard what an idle one could
run; `prefetch_single` for `?` and `!` queues, which have one reader).
Deliveries wait, unacknowledged, in a local buffer. A message is *taken*
when a receive pops it: the I/O thread acks it and then makes one
synchronous call on the same channel (`basic.qos`, the cheapest); the broker
handles a channel's methods in order, so its reply means the ack is done,
and only then is the message returned to the caller. Consequences:

- a message held in the buffer but not taken belongs to nobody yet: when
  the process stops asking for that channel (`idle_cancel` seconds), closes,
  or dies, the broker puts it back at its place in the queue and another
  reader gets it: not lost, and not a duplicate, since no caller saw it;
- a message whose ack cannot be confirmed (the connection breaks between
  the pop and the reply) is dropped, never returned: the broker may give it
  to another reader, and the contract prefers a loss to a duplicate. These
  are counted in `lost_in_flight`;
- a message is never redelivered after a caller got it.

The price is one round trip per receive that returns messages from a
normal channel (a batch shares it). `confirm_acks=False` saves it and
returns a message as soon as its ack is written: then a connection that
breaks in the instant between that write and the broker reading it (a
fraction of a millisecond) lets the broker give that message to another
reader too, a duplicate.

A `?` or `!` queue has one reader, this process, so it needs no such round
trip: a message it got back after a broken connection could only come back
*here*, flagged `redelivered`. Its messages are returned as soon as their
acks are written, and remembered (channel, send time, size) until a later
reply on the channel shows the broker had the acks (any synchronous call;
housekeeping makes one within a second); after a reconnect, a redelivered
message that matches one of them is acked and dropped, not returned twice
(`duplicates_dropped`). This takes a round trip off every reply an
interface server reads.

Expiry: the broker drops expired messages from queues, but not from a
consumer's unacknowledged buffer, so a buffered message older than `expiry`
(by the sender's clock, in header `t`, microseconds) is acked and dropped
at pop.
"""

from __future__ import annotations

import concurrent.futures
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import pika
import pika.exceptions as pexc

from ..backoff import Backoff
from ..errors import LayerConfigurationError, LayerConnectionError
from .declare import Declarer
from .groups import channel_of_member
from .pipelined import coalesce_writes
from .publisher import CONNECTION_ERRORS, broker_refusal
from .queues import is_single_reader_queue

logger = logging.getLogger("channels_core.layers.rabbitmq")

_MAX_UNCONFIRMED = 1000
"""Unconfirmed acks of single-reader messages kept before confirming them all (one round trip)."""
_CLAIM_TIMEOUT = 30.0  # seconds; only a broken I/O thread would take this long to finish a claim
_GRACE = 0.05
"""Seconds the I/O thread leaves the connection to callers after one used it: a worker's next receive
usually comes sooner, and finds the connection free to drive itself, with no thread hand-off."""


class Receiver:
    """The receiving side of one layer instance (see the module docstring)."""

    def __init__(
        self,
        parameters: pika.ConnectionParameters,
        declarer: Declarer,
        prefix: str,
        expiry: float,
        prefetch_for: Callable[[str], int],
        idle_cancel: float = 30.0,
        confirm_acks: bool = True,
        keepalive: Callable[[], None] | None = None,
    ) -> None:
        self.parameters = parameters
        self.declarer = declarer
        self.prefix = prefix
        self.expiry = expiry
        self.prefetch_for = prefetch_for
        self.idle_cancel = idle_cancel
        self.confirm_acks = confirm_acks
        self.keepalive = keepalive
        self.lost_in_flight = 0
        """Messages popped whose ack the broker never confirmed (dropped, never returned to a caller)."""
        self.reconnects = 0
        self.duplicates_dropped = 0
        """Redelivered single-reader messages dropped because a caller already got them (see the docstring)."""
        # Keys (channel, sent at, size) of single-reader messages returned with their acks not yet confirmed,
        # and, after a reconnect, those the new connection may redeliver (key -> how many).
        self._unconfirmed: list[tuple[str, float, int]] = []
        self._suspects: dict[tuple[str, float, int], int] = {}
        self._cond = threading.Condition()
        # queue -> deque of (delivery tag, full channel name, body, sent at)
        self._buffers: dict[str, deque] = {}
        self._jobs: deque = deque()
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        self._consumers: dict[str, str] = {}  # queue -> consumer tag
        self._queue_of: dict[str, str] = {}  # consumer tag -> queue
        self._wanted: dict[str, float] = {}  # queue -> when a receive last asked for it (monotonic)
        self._qos = 0
        self._waiters: list[_Waiter] = []  # blocked receives, oldest first (changed under _cond)
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # Who drives the connection: the I/O thread, or a blocked receive "leading" (see `_lead`).
        self._io_lock = threading.Lock()
        self._io_owner: str | int | None = None  # "io", a leader's thread id, or None (changed under _io_lock)
        self._leaders_wanted = 0  # receives waiting to lead (changed under _cond)
        self._leader_failure: BaseException | None = None  # what broke while a leader drove: reconnect
        self._released_at = 0.0  # when a caller last released `_io_lock` (monotonic)

    # -- called from any thread --------------------------------------------------

    def take(
        self, queues: Sequence[str], max_messages: int, sync: bool, timeout: float
    ) -> list[tuple[str, bytes, float]]:
        """Up to `max_messages` `(channel, body, sent_at)` taken from `queues` (see the module docstring).

        `sync` first makes sure every message the broker could already push
        to this process has arrived (a non-blocking receive must return a
        waiting message). Raises `LayerConnectionError` if the broker cannot
        be reached within `timeout`.
        """
        return self._call(lambda: self._take(list(queues), max_messages, sync), timeout)

    def take_waiting(
        self, queues: Sequence[str], max_messages: int, deadline: float, timeout: float
    ) -> list[tuple[str, bytes, float]]:
        """Like `take`, but waits until `deadline` (monotonic) for the first message; maybe none.

        A waiting caller is served by the I/O thread itself as soon as a
        delivery arrives (popped, acked and confirmed there), which saves
        two thread hand-offs per message over waking the caller to ask.
        """
        waiter = _Waiter(list(queues), max_messages)
        self._start()
        if not self._lead(waiter, deadline, registered=False):
            got = self._call(lambda: self._take_or_register(waiter), timeout)
            if got is not None:
                return got
            self._lead(waiter, deadline, registered=True)
        if not waiter.event.wait(max(0.0, deadline - time.monotonic())):
            with self._cond:
                if waiter.state == "waiting":
                    waiter.state = "cancelled"
                    return []
            # Claimed: its ack is being confirmed, one round trip (or a lost connection) away.
            waiter.event.wait(_CLAIM_TIMEOUT)
        return waiter.result

    def _lead(self, waiter: _Waiter, deadline: float, registered: bool) -> bool:
        """Drive the connection from this (blocked) thread until `waiter` is served: no thread hand-off.

        The I/O thread would otherwise read the delivery, then wake this
        thread: one hand-off on the path of every message, the largest part
        of the layer's latency over raw pika. The I/O thread yields the
        connection while someone leads (`_yield_to_leaders`) and takes it
        back after; other threads' jobs and waiters are served by whoever
        drives. If another thread already leads, this one waits for its
        event as before (the leader serves it too). Anything that breaks
        while leading is handed to the I/O thread, which reconnects.
        """
        with self._cond:
            if self._io_owner not in (None, "io") or self._closed or self._connection is None:
                return False
            self._leaders_wanted += 1
        try:
            if not self._io_lock.acquire(blocking=False):
                if not registered:
                    return False  # the I/O thread drives: register through it (`_call`), then ask again
                self._wake()
                if not self._io_lock.acquire(timeout=max(0.0, min(0.2, deadline - time.monotonic()))):
                    return False
            try:
                self._io_owner = threading.get_ident()
                connection = self._connection
                if connection is None or not connection.is_open or self._leader_failure is not None:
                    return registered
                if not registered:
                    self._run_jobs()
                    got = self._take_or_register(waiter)
                    registered = True
                    if got is not None:
                        waiter.state, waiter.result = "claimed", got
                        waiter.event.set()
                        return True
                while waiter.state == "waiting" and not self._closed and connection is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._connection is not connection or not connection.is_open:
                        break
                    self._run_jobs()
                    self._serve_waiters()
                    if waiter.state != "waiting":
                        break
                    connection.process_data_events(time_limit=min(remaining, 1.0))
                    self._serve_waiters()
            except BaseException as exc:  # noqa: BLE001 - the I/O thread raises it again and reconnects
                self._leader_failure = exc
                if not registered:
                    return False  # never registered: `_call` registers it once the I/O thread has reconnected
            finally:
                self._release_io()
        finally:
            with self._cond:
                self._leaders_wanted -= 1
                if self._leader_failure is not None:
                    self._cond.notify_all()
            if self._leader_failure is not None:
                self._wake()
        return True

    def _yield_to_leaders(self) -> None:
        """Called by the I/O thread holding `_io_lock`: let callers drive, then take it back when they are done."""
        self._io_owner = None
        self._io_lock.release()
        give_up_at = time.monotonic() + 1.0  # housekeeping and heartbeats still need the I/O thread now and then
        try:
            with self._cond:
                while not self._closed and self._leader_failure is None:
                    now = time.monotonic()
                    idle = now - self._released_at
                    if (not self._leaders_wanted and idle >= _GRACE) or now >= give_up_at:
                        break
                    # Timed, not notified: a caller releasing the connection must not wake this thread (it would
                    # compete for the GIL on the message's path); it looks again within _GRACE.
                    self._cond.wait(max(0.001, min(give_up_at - now, _GRACE - idle if idle < _GRACE else _GRACE)))
        finally:
            self._io_lock.acquire()
            self._io_owner = "io"
        failure, self._leader_failure = self._leader_failure, None
        if failure is not None:
            raise failure

    def close(self) -> None:
        """Stop the I/O thread; the broker puts every buffered, untaken message back in its queue."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.event.set()
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)

    def _call(self, work: Callable, timeout: float):
        self._start()
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._closed:
                raise LayerConnectionError("the layer is closed")
            self._jobs.append((work, future))
        if not self._drive_jobs():
            self._wake()
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.cancel():
                raise LayerConnectionError("RabbitMQ did not answer in time") from None
        # Already running: it may have taken messages, so its result must not be dropped; it ends
        # within a round trip (or with the connection).
        return future.result()

    def _drive_jobs(self) -> bool:
        """Run the queued jobs in this thread if the connection is free (no hand-off); False if it is not."""
        if not self._take_io():
            return False
        self._run_held()
        return True

    def _take_io(self) -> bool:
        """Take the connection for this thread if it is free and usable (open, no failure to handle)."""
        if self._connection is None or not self._io_lock.acquire(blocking=False):
            return False
        if self._connection is None or not self._connection.is_open or self._leader_failure is not None:
            self._io_lock.release()
            return False
        self._io_owner = threading.get_ident()
        return True

    def _run_held(self) -> None:
        """Run the jobs and serve the waiters on the connection this thread holds, then release it.

        A loop, not a recursion through `_release_io`: while the broker is away jobs keep coming and
        the connection keeps being unusable, and the recursion this replaced (release, take it back,
        find it closed, release...) ran out of stack during a broker restart.
        """
        while True:
            try:
                self._run_jobs()
                self._serve_waiters()
            except BaseException as exc:  # noqa: BLE001 - the I/O thread raises it again and reconnects
                self._leader_failure = exc
            self._give_back_io()
            if not self._jobs:
                return
            # Queued while we held it (their _wake reached nobody): run them, or make sure someone does.
            if not self._take_io():
                self._wake()
                return

    def _release_io(self) -> None:
        """A caller is done with the connection: the I/O thread takes it back after `_GRACE` if nobody does."""
        self._give_back_io()
        if self._jobs and not self._drive_jobs():
            self._wake()

    def _give_back_io(self) -> None:
        self._io_owner = None
        self._released_at = time.monotonic()
        self._io_lock.release()
        if self._leader_failure is not None:
            with self._cond:
                self._cond.notify_all()  # the I/O thread reconnects at once (otherwise its timed wait is enough)

    def _wake(self) -> None:
        with self._cond:
            connection = self._connection
        if connection is not None:
            try:
                connection.add_callback_threadsafe(lambda: None)  # returns the I/O thread from select
            except Exception:  # noqa: BLE001 - a closing connection: the I/O thread is reconnecting anyway
                pass

    def _start(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    thread = threading.Thread(target=self._run, name="rabbitmq-layer-receiver", daemon=True)
                    thread.start()
                    self._thread = thread

    # -- the I/O thread ------------------------------------------------------------

    def _run(self) -> None:
        backoff = Backoff(0.05, 2.0, jitter=0.2)
        while not self._closed:
            try:
                connection = pika.BlockingConnection(self.parameters)
                coalesce_writes(connection)
                channel = connection.channel()
                channel.add_on_cancel_callback(self._on_broker_cancel)
            except CONNECTION_ERRORS as exc:
                self._fail_jobs(LayerConnectionError(f"Cannot connect to RabbitMQ: {exc!r}"))
                time.sleep(backoff.next_delay())
                continue
            backoff.reset()
            with self._cond:
                self._connection, self._channel, self._qos = connection, channel, 0
                self._suspect_unconfirmed()
            self.declarer.reset()
            try:
                self._serve(connection)
            except CONNECTION_ERRORS as exc:
                logger.warning("RabbitMQ receive connection lost (%r); reconnecting", exc)
                self.reconnects += 1
            except Exception:
                # A bug must not leave every receive of the process waiting on a dead thread.
                logger.exception("RabbitMQ receive thread failed; reconnecting")
                self.reconnects += 1
                time.sleep(backoff.next_delay())
            finally:
                self._forget_connection(connection)

    def _serve(self, connection) -> None:
        self._io_lock.acquire()
        self._io_owner = "io"
        self._leader_failure = None  # from the connection before this one (driven as it was being dropped)
        try:
            self._serve_locked(connection)
        finally:
            self._io_owner = None
            self._io_lock.release()

    def _serve_locked(self, connection) -> None:
        # Resume the queues a receive asked for recently (their consumers died with the old connection).
        now = time.monotonic()
        self._ensure([q for q, when in self._wanted.items() if now - when < self.idle_cancel])
        last_housekeeping = now
        while not self._closed:
            if (
                self._leaders_wanted
                or self._leader_failure is not None
                or time.monotonic() - self._released_at < _GRACE
            ):
                self._yield_to_leaders()
            if self._run_jobs():
                # A caller handed its job over (it found the connection held): leave the connection to
                # callers again (the top of the loop), or every later call would be handed over too.
                self._released_at = time.monotonic()
                self._serve_waiters()
                continue
            self._serve_waiters()
            if not self._leaders_wanted:
                connection.process_data_events(time_limit=1.0)
                self._serve_waiters()
            if time.monotonic() - last_housekeeping >= 1.0:
                self._housekeeping()
                if self.keepalive is not None:
                    self.keepalive()
                last_housekeeping = time.monotonic()
        self._run_jobs()

    def _run_jobs(self) -> bool:
        """Run the queued jobs; True if there was one."""
        ran = False
        while True:
            with self._cond:
                if not self._jobs:
                    return ran
                work, future = self._jobs.popleft()
            ran = True
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(work())
            except pexc.ChannelClosedByBroker as exc:
                error = broker_refusal(exc)
                if isinstance(error, LayerConfigurationError):
                    # Not retried after the reconnect: the queue is refused until settings agree.
                    for queue in [q for q in self._wanted if q not in self._consumers]:
                        del self._wanted[queue]
                future.set_exception(error)
                raise
            except CONNECTION_ERRORS as exc:
                future.set_exception(LayerConnectionError(f"Lost the RabbitMQ connection: {exc!r}"))
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

    def _fail_jobs(self, error: Exception) -> None:
        with self._cond:
            jobs, self._jobs = list(self._jobs), deque()
        for _, future in jobs:
            if future.set_running_or_notify_cancel():
                future.set_exception(error)

    def _forget_connection(self, connection) -> None:
        # The broker requeues every unacknowledged delivery of a closed connection: drop our copies.
        with self._cond:
            self._connection = self._channel = None
            self._buffers.clear()
            self._consumers.clear()
            self._queue_of.clear()
            closed = self._closed
        if closed:
            self._fail_jobs(LayerConnectionError("the layer is closed"))
        try:
            if connection.is_open:
                connection.close()
        except Exception:  # noqa: BLE001 - it is going away either way
            pass

    def _ensure(self, queues: list[str]) -> None:
        """Declare (when due) and consume every queue of `queues` that has no consumer yet."""
        channel = self._channel
        for queue in queues:
            if self.declarer.due(queue):
                self.declarer.declare(channel, queue)
            if queue in self._consumers:
                continue
            prefetch = self.prefetch_for(queue)
            if prefetch != self._qos:
                channel.basic_qos(prefetch_count=prefetch)
                self._qos = prefetch
            with self._cond:
                self._buffers.setdefault(queue, deque())
            tag = channel.basic_consume(queue, self._on_message, auto_ack=False)
            self._consumers[queue] = tag
            self._queue_of[tag] = queue

    def _take(self, queues: list[str], max_messages: int, sync: bool) -> list[tuple[str, bytes, float]]:
        now = time.monotonic()
        for queue in queues:
            self._wanted[queue] = now
        self._ensure(queues)
        channel, connection = self._channel, self._connection
        if sync:
            # The reply comes after every delivery the broker had for us (see the module docstring).
            channel.basic_qos(prefetch_count=self._qos)
            self._unconfirmed.clear()  # and after every ack written before it
            connection.process_data_events(time_limit=0)
        with self._cond:
            # A queue whose consumer holds a delivery now has nothing on its way to us (prefetch 1).
            settled = set(queues) if sync else {queue for queue in queues if self._buffers.get(queue)}
            got, acks, keys, shared = self._pop_locked(queues, max_messages)
        if len(got) < max_messages and max_messages > 1:
            shared = self._top_up([queue for queue in queues if queue in settled], max_messages, got, acks) or shared
        if not acks:
            return []
        try:
            self._ack(acks, shared and bool(got), keys)
        except CONNECTION_ERRORS:
            self.lost_in_flight += len(got)
            raise
        return got

    def _ack(self, acks: list[int], confirm: bool, keys: list[tuple[str, float, int]]) -> None:
        """Write `acks` (see `_settle`); confirm them with one round trip if `confirm` (a normal queue's message
        was taken), else remember `keys`, the single-reader messages taken, until a later reply confirms them."""
        channel = self._channel
        _settle(channel, acks)
        if confirm and self.confirm_acks:
            channel.basic_qos(prefetch_count=self._qos)  # the broker has handled the acks once this returns
            self._unconfirmed.clear()
            return
        if len(self._unconfirmed) + len(keys) > _MAX_UNCONFIRMED:
            channel.basic_qos(prefetch_count=self._qos)
            self._unconfirmed.clear()
        else:
            channel._flush_output()  # private (see `_settle`): write the acks now, wait for nothing
            # Only once written: a message whose ack was never written goes to no caller, so when the
            # broker gives it back it is not a duplicate.
            self._unconfirmed += keys

    def _suspect_unconfirmed(self) -> None:
        """A new connection: the old one's unconfirmed acks may not have reached the broker (call under `_cond`)."""
        cutoff = time.time() - self.expiry  # anything older is dropped as expired anyway
        suspects = {key: n for key, n in self._suspects.items() if key[1] >= cutoff}
        for key in self._unconfirmed:
            if key[1] >= cutoff:
                suspects[key] = suspects.get(key, 0) + 1
        self._unconfirmed = []
        self._suspects = suspects

    def _top_up(self, queues: list[str], max_messages: int, got: list, acks: list[int]) -> bool:
        """Fill a batch from normal queues with `basic.get`: their prefetch (1) keeps the buffer short.

        Once per receive, never in a loop waiting for messages. Only normal
        queues with nothing on its way to the consumer (`queues` holds only
        those: the consumer held a delivery, still unacked, so the broker
        sends it nothing newer; or a synchronous call just flushed every
        delivery in flight), so a get never overtakes an older message and
        the channel stays FIFO for a single reader. A `?`/`!` queue's
        deliveries (prefetch > 1) may be in flight, and a get could return a
        later message first.
        """
        channel = self._channel
        cutoff = time.time() - self.expiry
        took = False
        for queue in queues:
            if self.prefetch_for(queue) >= max_messages or is_single_reader_queue(self.prefix, queue):
                continue
            while len(got) < max_messages:
                method, properties, body = channel.basic_get(queue, auto_ack=False)
                if method is None:
                    break
                name, sent_at = self._describe(queue, properties)
                if sent_at >= cutoff:
                    acks.append(method.delivery_tag)
                    got.append((name, body, sent_at))
                    took = True
                else:
                    acks.append(-method.delivery_tag)
        return took

    def _describe(self, queue: str, properties) -> tuple[str, float]:
        """The full channel name and the send time (seconds) of a message from `queue`."""
        headers = properties.headers or {}
        name = headers.get("c")
        if name is None and queue.endswith("!"):
            # A group copy: dead-lettered from its member queue, whose name holds the channel (`.groups`).
            member = headers.get("x-first-death-queue")
            if isinstance(member, bytes):
                member = member.decode("utf8")
            if isinstance(member, str):
                name = channel_of_member(self.prefix, member)
        if isinstance(name, bytes):
            name = name.decode("utf8")
        sent = headers.get("t")
        return name or queue[len(self.prefix) :], sent / 1_000_000 if sent else time.time()

    def _pop_locked(self, queues: list[str], max_messages: int):
        """Buffered deliveries of `queues`: `(got, delivery tags to ack, keys, shared)`.

        Tags are negated for expired messages (to reject); `keys` are those of
        the single-reader messages taken, `shared` says a normal queue's was.
        """
        order = list(queues)
        if len(order) > 1:
            random.shuffle(order)  # a busy channel must not starve a quiet one
        got: list[tuple[str, bytes, float]] = []
        acks: list[int] = []
        keys: list[tuple[str, float, int]] = []
        shared = False
        cutoff = time.time() - self.expiry
        for queue in order:
            buffer = self._buffers.get(queue)
            if not buffer:
                continue
            single = is_single_reader_queue(self.prefix, queue)
            while buffer and len(got) < max_messages:
                tag, channel_name, body, sent = buffer.popleft()
                if sent >= cutoff:
                    acks.append(tag)
                    got.append((channel_name, body, sent))
                    if single:
                        keys.append((channel_name, sent, len(body)))
                    else:
                        shared = True
                else:
                    acks.append(-tag)  # rejected: a group copy goes on to the eviction queue (`.groups`)
            if len(got) >= max_messages:
                break
        return got, acks, keys, shared

    def _take_or_register(self, waiter: _Waiter) -> list[tuple[str, bytes, float]] | None:
        got = self._take(waiter.queues, waiter.max_messages, False)
        if got:
            return got
        with self._cond:
            self._waiters.append(waiter)
        return None

    def _serve_waiters(self) -> None:
        """Hand waiting receives what has arrived for them, acked and confirmed (see `take_waiting`)."""
        if not self._waiters:
            return
        claimed: list[_Waiter] = []
        acks: list[int] = []
        keys: list[tuple[str, float, int]] = []
        shared = False
        now = time.monotonic()
        with self._cond:
            waiting = []
            for waiter in self._waiters:
                if waiter.state == "cancelled":
                    continue
                for queue in waiter.queues:
                    self._wanted[queue] = now
                got, tags, taken, from_shared = self._pop_locked(waiter.queues, waiter.max_messages)
                acks += tags
                keys += taken
                shared = shared or from_shared
                if got:
                    waiter.state, waiter.result = "claimed", got
                    claimed.append(waiter)
                else:
                    waiting.append(waiter)
            self._waiters = waiting
        if not acks:
            return
        try:
            self._ack(acks, shared, keys)
        except CONNECTION_ERRORS:
            for waiter in claimed:
                self.lost_in_flight += len(waiter.result)
                waiter.result = []
                waiter.event.set()
            raise
        for waiter in claimed:
            waiter.event.set()

    def _on_message(self, channel, method, properties, body: bytes) -> None:
        queue = self._queue_of.get(method.consumer_tag)
        if queue is None:
            return
        name, sent_at = self._describe(queue, properties)
        if method.redelivered and self._suspects:
            key = (name, sent_at, len(body))
            left = self._suspects.get(key)
            if left:
                # A caller got it before the connection broke; the ack did not reach the broker.
                if left == 1:
                    del self._suspects[key]
                else:
                    self._suspects[key] = left - 1
                self.duplicates_dropped += 1
                channel.basic_ack(method.delivery_tag)
                return
        entry = (method.delivery_tag, name, body, sent_at)
        with self._cond:
            # No notify: whoever drives the connection serves the waiters next (`_serve_waiters`), and the
            # only thread waiting on `_cond`, the I/O thread yielding to callers, must not wake per message.
            self._buffers.setdefault(queue, deque()).append(entry)

    def _on_broker_cancel(self, frame) -> None:
        # The queue was deleted (flush, or x-expires): its messages are gone; consume again when asked.
        tag = frame.method.consumer_tag
        queue = self._queue_of.pop(tag, None)
        if queue is None:
            return
        self._consumers.pop(queue, None)
        self.declarer.forget(queue)
        # Not wanted until a receive asks again: housekeeping must not re-create a queue a flush just deleted.
        self._wanted.pop(queue, None)
        with self._cond:
            stale = self._buffers.pop(queue, None) or ()
        channel = self._channel
        for entry in stale:
            channel.basic_ack(entry[0])  # frees the channel's record; the queue and its messages are gone

    def _housekeeping(self) -> None:
        now = time.monotonic()
        channel = self._channel
        if self._unconfirmed:
            channel.basic_qos(prefetch_count=self._qos)  # the reply confirms every ack written before it
            self._unconfirmed.clear()
        for queue, when in list(self._wanted.items()):
            if now - when < self.idle_cancel:
                if self.declarer.due(queue):
                    self.declarer.declare(channel, queue)  # keeps x-expires from deleting a queue in use
                continue
            del self._wanted[queue]
            tag = self._consumers.pop(queue, None)
            if tag is None:
                continue
            self._queue_of.pop(tag, None)
            channel.basic_cancel(tag)
            with self._cond:
                held = self._buffers.pop(queue, None) or ()
            for entry in held:
                # Never taken: back to its place in the queue for another reader.
                channel.basic_nack(entry[0], requeue=True)


def _settle(channel, tags: list[int]) -> None:
    """Write an ack for each positive delivery tag, a reject (no requeue: dead-letter) for each negated one.

    Through the channel underneath (`BlockingChannel._impl`, private like the
    members `.pipelined` names): pika's blocking `basic_ack` makes a poll
    cycle per ack to write it; here they are queued and written by the one
    flush (or synchronous call) that follows, a third of a receive's cost.
    """
    impl = channel._impl
    for tag in tags:
        if tag > 0:
            impl.basic_ack(tag)
        else:
            impl.basic_nack(-tag, requeue=False)


class _Waiter:
    """A blocked receive: the I/O thread claims it (under the condition's lock) and fills `result`."""

    __slots__ = ("queues", "max_messages", "state", "result", "event")

    def __init__(self, queues: list[str], max_messages: int) -> None:
        self.queues = queues
        self.max_messages = max_messages
        self.state = "waiting"  # then "claimed" by the I/O thread, or "cancelled" by the caller at its deadline
        self.result: list[tuple[str, bytes, float]] = []
        self.event = threading.Event()
