"""`Worker` (one blocking loop) and `WorkerGroup` (several in threads)."""

from __future__ import annotations

import fnmatch
import inspect
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from channels_core.consumer_sends import pending_message_store
from channels_core.exceptions import ChannelSocketException, ConsumeLater, DenyConnection
from channels_core.layers import heap
from channels_core.layers.backoff import Backoff, retry
from channels_core.layers.contract import supports
from channels_core.layers.drop_log import DropLog
from channels_core.layers.errors import ChannelFull, LayerConfigurationError
from channels_core.layers.reliable import without_delivery
from channels_core.message import Message
from channels_core.reply_hold import reply_hold
from channels_core.signals import consumer_finished, consumer_started, worker_ready
from routing.names import name_that_thing

from . import validation
from .acks import deliveries_for

logger = logging.getLogger("worker")

_REQUEUE_TRIES = 10
_REQUEUE_DELAY = 0.05
_MIN_BACKOFF = 0.05
_MAX_BACKOFF = 2.0
DRAIN_TIMEOUT = 30.0
# How long one read waits before the loop looks at `termed` again: the bound on an idle worker's
# shutdown. The SIGTERM handler never interrupts a read (a message it had popped would be lost).
WAKE_INTERVAL = 0.5
# How long a held reply (`channels_core.reply_hold`) is retried while its channel is full: ViewConsumer.send_timeout.
HELD_REPLY_TIMEOUT = 10.0


def default_threads() -> int:
    """`runworker --threads` default: two per CPU, at least 2 and at most 8.

    Consumers mostly wait (database, HTTP calls, sleeps) with the GIL
    released, so two threads per core keep a core busy while one waits, and
    one slow consumer does not hold up every other message of the process.
    The cap bounds the database connections (one per thread).
    """
    return min(8, max(2, 2 * (os.cpu_count() or 1)))


def filter_channels(channels: Iterable[str], only: list[str] | None, exclude: list[str] | None) -> list[str]:
    """Apply `--only-channels` / `--exclude-channels` globs."""
    selected = sorted(channels)
    if only:
        selected = [c for c in selected if any(fnmatch.fnmatchcase(c, glob) for glob in only)]
    if exclude:
        selected = [c for c in selected if not any(fnmatch.fnmatchcase(c, glob) for glob in exclude)]
    return selected


def _client(content: dict) -> str:
    client = content.get("client")
    if isinstance(client, (list, tuple)) and len(client) == 2:
        who = f"{client[0]}:{client[1]}"
    else:
        # websocket.receive/disconnect carry no client: the reply channel names the connection.
        who = str(content.get("reply_channel") or "-")
    path = content.get("path")
    if isinstance(path, bytes):
        path = path.decode("utf-8", "replace")
    return f"{who} ({path})" if isinstance(path, str) else who


class Worker:
    """Blocks on the routed channels and runs each message's consumer, with Channels 1.x semantics.

    `channel_layer` is a `ChannelLayerWrapper` (it has a `router`). A consumer
    that raises is logged with its channel and client and answered (500 for
    HTTP, close for WebSocket); the loop goes on. On SIGTERM/SIGINT the
    worker handles every message it has taken, then returns: the handler
    only sets `termed`, and each read lasts at most `WAKE_INTERVAL`, so an
    idle worker stops within about half a second and a busy one after its
    current consumer. A layer whose store
    refuses its settings (`LayerConfigurationError`) ends `run` with that error.
    """

    def __init__(
        self,
        channel_layer: Any,
        callback: Callable[[str, Message], None] | None = None,
        message_retries: int = 10,
        signal_handlers: bool = True,
        only_channels: list[str] | None = None,
        exclude_channels: list[str] | None = None,
        prefetch: int = 1,
        metrics: Any = None,
    ) -> None:
        self.channel_layer = channel_layer
        self.prefetch = prefetch
        self._batched = supports(channel_layer, "batch")
        self._timed = self._batched and _takes_timeout(channel_layer)
        self.callback = callback
        self.message_retries = message_retries
        self.signal_handlers = signal_handlers
        self.only_channels = only_channels
        self.exclude_channels = exclude_channels
        self.termed = False
        self.in_job = False
        self.handled = 0
        self.failures = 0
        self.receive_errors = 0
        self.invalid = DropLog(logger, "an invalid message")
        """Messages dropped before routing (`validation.problem`), counted per channel; shared by a group's threads."""
        self.metrics = metrics
        """A `worker.metrics.WorkerMetrics` (shared by a group's threads), or None: no metrics, no cost."""
        self._tally = metrics.tally() if metrics is not None else None
        """This thread's plain counters (`worker.metrics.Tally`), moved into `metrics` by `metrics.flush()`."""
        self._queue_waits = metrics is not None and supports(channel_layer, "queue_wait")
        # Bound once: through ChannelLayerWrapper.__getattr__ each call would cost a microsecond.
        self._last_queue_waits = channel_layer.last_queue_waits if self._queue_waits else None
        self._pipelined = self._timed and hasattr(channel_layer, "send_then_receive_batch")
        """The layer can send a reply with the next read (`channels_core.reply_hold`)."""
        self._held: tuple[str, Any] | None = None
        """The last batch's held reply, sent with the next read."""
        self.deliveries = deliveries_for(channel_layer)
        """At-least-once channels (`worker.acks`): held while they wait and run, then acked; None without them."""
        self.consumer_failed = False
        """Whether the last consumer `handle` ran raised (an at-least-once message is then nacked)."""
        self.last_receive: float | None = None
        """`time.monotonic()` when the last read from the layer returned (with messages or not): the loop is alive."""
        self.failing_since: float | None = None
        """`time.monotonic()` of the first failed read of the current failure, None while reads work."""
        self.receive_error = ""
        """The last failed read's error, for `/readyz`."""

    def install_signal_handler(self) -> None:
        signal.signal(signal.SIGTERM, self.sigterm_handler)
        signal.signal(signal.SIGINT, self.sigterm_handler)

    def sigterm_handler(self, signo: int, stack_frame: Any) -> None:
        """Ask the loop to stop; never raises.

        Raising here could land between Redis popping a message and the loop
        holding it (the reply in flight on the socket, or returned but not yet
        handled): that message would exist nowhere. Instead the loop's reads
        last at most `WAKE_INTERVAL` (or the layer's blocking timeout), and the
        loop handles whatever a read returned before it looks at `termed`.
        """
        if self.termed:
            return  # already on the way out
        self.termed = True
        logger.info("Shutdown requested: finishing the messages taken, then exiting")

    def apply_channel_filters(self, channels: Iterable[str]) -> list[str]:
        return filter_channels(channels, self.only_channels, self.exclude_channels)

    def ready(self) -> None:
        heap.settle()  # once per process: Django and the app are loaded, nothing is read yet (heap.py)
        worker_ready.send(sender=self)

    def channels(self) -> list[str]:
        return self.apply_channel_filters(self.channel_layer.router.channels)

    def run(self) -> None:
        if self.signal_handlers:
            self.install_signal_handler()
        channels = self.channels()
        if not channels:
            raise ValueError("This worker has no channels to listen on (check --only-channels/--exclude-channels)")
        self.announce(channels)
        backoff = Backoff(_MIN_BACKOFF, _MAX_BACKOFF)
        if self.metrics is not None:
            self.metrics.start_counting_store(pending_message_store)
        while not self.termed:
            self.in_job = False
            try:
                batch = self._receive(channels)
                self.in_job = bool(batch)  # informative only: the handler no longer depends on it
            except LayerConfigurationError:
                raise  # the store refuses the layer's settings: retrying cannot help
            except Exception as exc:
                self.in_job = False
                delay = backoff.next_delay()
                self.receive_error = f"{type(exc).__name__}: {exc}"
                if self.metrics is not None:
                    self.metrics.receive_errors.inc()
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                    logger.error(
                        "Receiving from the channel layer failed (%s: %s); retrying with backoff",
                        type(exc).__name__,
                        exc,
                    )
                else:
                    logger.debug("Receiving still fails (%s: %s); retrying in %.2fs", type(exc).__name__, exc, delay)
                self.receive_errors += 1
                time.sleep(delay)
                continue
            self.last_receive = time.monotonic()
            if self.failing_since is not None:
                logger.warning(
                    "Receiving from the channel layer works again after %.1fs", self.last_receive - self.failing_since
                )
                self.failing_since = None
            backoff.reset()
            if batch and self._queue_waits:
                self._record_waits(batch)
            # Messages already taken are all handled, even after SIGTERM: they exist nowhere else.
            self._handle_batch(batch)
            self._held = reply_hold.take()
        self._send_held()
        self._drain_local(channels)
        self.in_job = False
        if self.metrics is not None:
            self.metrics.flush()  # what this thread counted last must reach the metrics before the process ends

    def announce(self, channels: list[str]) -> None:
        logger.info(
            "Listening on channels %s (pid %d, %s)", ", ".join(channels), os.getpid(), threading.current_thread().name
        )

    def _record_waits(self, batch: list[tuple[str, dict]]) -> None:
        try:
            waits = self._last_queue_waits()
        except Exception:  # the figures are optional; the messages are not
            logger.debug("last_queue_waits() failed", exc_info=True)
            return
        self._tally.received(batch, waits)

    def _receive(self, channels: list[str]) -> list[tuple[str, dict]]:
        """One blocking read of at most `WAKE_INTERVAL` (layers with `receive_batch(timeout=)`).

        With the `batch` extension it takes up to `prefetch` waiting messages
        at once. A layer without a timed read blocks for its own blocking
        timeout, which then bounds an idle worker's shutdown.
        """
        if self._held is not None:
            return self._send_then_receive(channels)
        if self._timed:
            return self.channel_layer.receive_batch(channels, self.prefetch, block=True, timeout=WAKE_INTERVAL)
        if self.prefetch > 1 and self._batched:
            return self.channel_layer.receive_batch(channels, self.prefetch, block=True)
        channel, content = self.channel_layer.receive(channels, block=True)
        return [] if channel is None else [(channel, content)]

    def _send_then_receive(self, channels: list[str]) -> list[tuple[str, dict]]:
        """Send the held reply and read in one round trip; a full reply channel is retried first (no read)."""
        held = self._held
        self._held = None
        full = getattr(self.channel_layer, "ChannelFull", ChannelFull)
        try:
            return self.channel_layer.send_then_receive_batch(*held, channels, self.prefetch, WAKE_INTERVAL)
        except full:
            self._held = held
            self._send_held()
            return []
        except Exception as exc:
            logger.warning("Could not send a reply to %s: %s: %s", held[0], type(exc).__name__, exc)
            if self.metrics is not None:
                self.metrics.dropped("http.request", "answer")
            raise

    def _release_held(self) -> None:
        """Send at once the reply the running consumer held, if any (something else follows it)."""
        if self._pipelined:
            self._held = reply_hold.take()
            self._send_held()

    def _send_held(self) -> None:
        """Send the held reply now (alone), retried like `ViewConsumer.send` while its channel is full."""
        held = self._held
        if held is None:
            return
        self._held = None
        full = getattr(self.channel_layer, "ChannelFull", ChannelFull)
        try:
            sent = retry(lambda: self.channel_layer.send(*held), full, Backoff(0.005, 0.1), timeout=HELD_REPLY_TIMEOUT)
            if not sent:
                logger.error(
                    "Abandoned a response: the reply channel %s stayed full for %ss", held[0], HELD_REPLY_TIMEOUT
                )
        except Exception as exc:
            sent = False
            logger.warning("Could not send a reply to %s: %s: %s", held[0], type(exc).__name__, exc)
        if not sent and self.metrics is not None:
            self.metrics.dropped("http.request", "answer")

    def _drain_local(self, channels: list[str]) -> None:
        """Before exiting, handle what the layer already took out of its store and holds in this process.

        The Redis layer keeps in memory what a read on several shards popped
        after losing the race to another shard; it is in no queue any more, so
        leaving without it would lose it.
        """
        held = getattr(self.channel_layer, "decoder", None)
        if held is None or not self._batched:
            return
        for _ in range(10_000):  # bounded: the buffer only shrinks, but never spin on a layer bug
            if not held:
                return
            try:
                batch = self.channel_layer.receive_batch(channels, max(self.prefetch, 1), block=False)
            except Exception:
                logger.exception("Could not hand over the messages this worker held while stopping")
                return
            if not batch:
                return
            if self._queue_waits:
                self._record_waits(batch)
            self._handle_batch(batch)
            self._held = reply_hold.take()
            self._send_held()

    def _handle_batch(self, batch: list[tuple[str, dict]]) -> None:
        """Handle each message; at-least-once ones are held from now and acked (or nacked) as each one ends."""
        held = {}
        if self.deliveries is not None:
            for i, (channel, content) in enumerate(batch):
                delivery_id = self.deliveries.delivery(channel, content)
                if delivery_id is not None:
                    self.deliveries.hold(channel, delivery_id)
                    held[i] = delivery_id
        last = len(batch) - 1
        for i, (channel, content) in enumerate(batch):
            self.consumer_failed = False
            if i == last and self._pipelined and i not in held:
                # Its reply may leave with the next read (acked messages are answered before their ack).
                reply_hold.open()
            self.handle(channel, content)
            reply_hold.close()
            # Not in a `finally`: a consumer cut short by SystemExit is not done, and is delivered again.
            if i in held:
                self.deliveries.finish(channel, held[i], failed=self.consumer_failed)

    def handle(self, channel: str, content: dict) -> None:
        """Route and run one message; never raises (except SystemExit/KeyboardInterrupt).

        A message of the wrong shape (`validation.problem`) is dropped before
        routing: counted in `invalid`, logged once per channel and minute, and
        its client answered if it can be (400, or a refused handshake).
        """
        why = validation.problem(channel, content)
        if why is not None:
            self.invalid.drop(channel, why)
            if self.metrics is not None:
                self.metrics.invalid(channel)
            self._refuse(channel, content)
            return
        try:
            message = Message(content, channel, self.channel_layer)
            if content.get("__retries__", 0) >= self.message_retries:
                message.__doomed__ = True
            if self.callback is not None:
                self.callback(channel, message)
            match = self.channel_layer.router.match(message)
        except Exception:
            logger.exception("Cannot route a message on %s", channel)
            return
        if match is None:
            logger.error("No route matches a message on %s from %s; check your routing", channel, _client(content))
            return
        consumer, kwargs = match
        metrics = self.metrics
        if metrics is not None:
            started = time.perf_counter()
        # Explicitly around the consumer, not through the signals: the buffer must not depend on
        # which receivers are connected or in what order they run.
        pending_message_store.start()
        try:
            consumer_started.send(sender=self.__class__, environ={})
            try:
                consumer(message, **kwargs)
            except BaseException:
                self._release_held()  # what is sent to the client next goes after the reply it holds
                raise
        except DenyConnection:
            if channel == "websocket.connect" and message.reply_channel is not None:
                self._reply(message, {"close": True})
            else:
                logger.error(
                    "DenyConnection raised by %s on %s: only a websocket.connect consumer can deny a connection",
                    name_that_thing(consumer),
                    channel,
                )
        except ChannelSocketException as exc:
            try:
                exc.run(message)
            except Exception:
                logger.exception("Handling %s for a message on %s failed", type(exc).__name__, channel)
        except ConsumeLater:
            try:
                self.requeue(channel, content)
            except Exception:
                logger.exception("Could not requeue a message on %s (ConsumeLater); dropped", channel)
        except Exception as exc:
            client = _client(content)
            logger.exception(
                "Consumer %s failed on %s from %s",
                name_that_thing(consumer),
                channel,
                client,
                extra={"channel_type": channel, "client": client, "consumer": name_that_thing(consumer)},
            )
            self.failures += 1
            self.consumer_failed = True
            if metrics is not None:
                metrics.failed(channel, exc)
            self.answer_failure(channel, message)
        finally:
            if pending_message_store.buffered:
                self._release_held()
            # What the consumer sent (then the failure answer) goes out before any receiver runs.
            flushed = pending_message_store.flush()
            if metrics is not None:
                metrics.consumer_sends_dropped(channel, flushed, pending_message_store)
            # send_robust: one failing receiver (say, closing a broken DB connection) must not
            # escape into the loop.
            for receiver, result in consumer_finished.send_robust(sender=self.__class__):
                if isinstance(result, Exception):
                    logger.error(
                        "consumer_finished receiver %s failed after a message on %s: %s: %s",
                        name_that_thing(receiver),
                        channel,
                        type(result).__name__,
                        result,
                        exc_info=result,
                    )
            self.handled += 1
            if metrics is not None:
                self._tally.consumed(channel, time.perf_counter() - started)

    def answer_failure(self, channel: str, message: Message) -> None:
        """Tell the client something went wrong: 500 for HTTP, a close for WebSocket."""
        if message.reply_channel is None:
            return
        if channel == "http.request":
            reply = {
                "status": 500,
                "headers": [[b"content-type", b"text/plain"]],
                "content": b"500 Internal Server Error\n",
            }
        elif channel in ("websocket.connect", "websocket.receive"):
            reply = {"close": 1011}
        else:
            return
        self._reply(message, reply)

    def _refuse(self, channel: str, content: Any) -> None:
        """Answer the client of an invalid request or connect, when it names a reply channel."""
        if channel not in ("http.request", "websocket.connect") or not isinstance(content, dict):
            return
        reply_channel = content.get("reply_channel")
        if not isinstance(reply_channel, str):
            return
        if channel == "http.request":
            reply = {
                "status": 400,
                "headers": [[b"content-type", b"text/plain"]],
                "content": b"400 Bad Request: the interface server sent an invalid message\n",
            }
        else:
            reply = {"close": True}
        try:
            self.channel_layer.send(reply_channel, reply)
        except Exception as exc:  # a malformed name, a full channel: the drop is already logged
            logger.debug("Could not answer an invalid message on %s: %s", channel, exc)
            if self.metrics is not None:
                self.metrics.dropped(channel, "answer")

    def _reply(self, message: Message, reply: dict) -> None:
        """Send on the reply channel after what the consumer already sent (buffered, so in order)."""
        try:
            message.reply_channel.send(reply)
        except Exception as exc:
            logger.warning("Could not send %r to %s: %s", reply, message.reply_channel.name, exc)
            if self.metrics is not None:
                self.metrics.dropped(message.channel.name, "answer")

    def requeue(self, channel: str, content: dict) -> None:
        """ConsumeLater: put the message back at the end of its channel, a bounded number of times."""
        retries = content.get("__retries__", 0) + 1
        if retries > self.message_retries:
            logger.warning("Dropped a message on %s after %d retries (ConsumeLater)", channel, self.message_retries)
            return
        # A new message: an at-least-once original is acked once this copy is queued.
        content = {**without_delivery(content), "__retries__": retries}
        full = getattr(self.channel_layer, "ChannelFull", ChannelFull)
        steady = Backoff(_REQUEUE_DELAY, _REQUEUE_DELAY)
        if retry(lambda: self.channel_layer.send(channel, content), full, steady, tries=_REQUEUE_TRIES):
            return
        logger.warning("Dropped a message on %s: the channel stayed full while requeueing it", channel)
        if self.metrics is not None:
            self.metrics.dropped(channel, "requeue")


class WorkerGroup(Worker):
    """`n_threads` workers: this one plus `n_threads - 1` in threads; SIGTERM drains them all."""

    def __init__(self, *args: Any, n_threads: int = 2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workers = [_Thread(*args, **{**kwargs, "signal_handlers": False}) for _ in range(n_threads - 1)]
        for worker in self.workers:
            worker.invalid = self.invalid  # one count and one log line per channel for the process

    def sigterm_handler(self, signo: int, stack_frame: Any) -> None:
        """Ask every thread to stop after the messages it took; never raises (see `Worker.sigterm_handler`)."""
        if self.termed:
            return
        self.termed = True
        for worker in self.workers:
            worker.termed = True
        logger.info("Shutdown requested: the %d worker threads finish the messages they took", len(self.workers) + 1)

    def announce(self, channels: list[str]) -> None:
        logger.info(
            "Listening on channels %s (pid %d, %d threads)", ", ".join(channels), os.getpid(), len(self.workers) + 1
        )

    def ready(self) -> None:
        super().ready()
        for worker in self.workers:
            worker.ready()

    def run(self) -> None:
        """Run every thread until SIGTERM; a thread's fatal error (`LayerConfigurationError`) stops them all
        and is raised here, once."""
        self._thread_error: BaseException | None = None
        threads = [
            threading.Thread(target=self._run_thread, args=(w,), name=f"worker-{i}", daemon=True)
            for i, w in enumerate(self.workers)
        ]
        for thread in threads:
            thread.start()
        try:
            super().run()
            if self._thread_error is not None:
                raise self._thread_error
        finally:
            for worker in self.workers:
                worker.termed = True
            deadline = time.monotonic() + DRAIN_TIMEOUT
            for thread in threads:
                # A thread in an idle read returns within WAKE_INTERVAL (or the layer's blocking
                # timeout); one in a consumer finishes the messages it took first.
                thread.join(max(0.0, deadline - time.monotonic()))

    def _run_thread(self, worker: Worker) -> None:
        try:
            worker.run()
        except BaseException as exc:
            # One thread cannot go on (the store refuses the layer's settings): the process stops.
            if self._thread_error is None:
                self._thread_error = exc
            self.termed = True
            for other in self.workers:
                other.termed = True


class _Thread(Worker):
    """One of a `WorkerGroup`'s extra threads: the group announces them all in one line."""

    def announce(self, channels: list[str]) -> None:
        logger.debug("Worker thread %s listening", threading.current_thread().name)


def _takes_timeout(channel_layer: Any) -> bool:
    """True if the layer's `receive_batch` has the `timeout=` parameter (the batch contract's newer form)."""
    try:
        return "timeout" in inspect.signature(channel_layer.receive_batch).parameters
    except (TypeError, ValueError):
        return False
