"""Every layer call of the interface server, made off the reactor, with backpressure instead of loss.

The reactor never talks to the layer itself: a Redis that accepts
connections but never answers would stall every client. Instead each
message goes to the sender:

- In the reactor, `Sender.put` collects the turn's messages and hands them
  to the sender thread once, at the end of the turn (so consecutive
  messages for one channel still leave as one `send_many`).
- The sender thread keeps one FIFO queue per channel (`SendQueues`): a full
  channel waits (retried after 5-50 ms) while the others go on; an
  unreachable layer makes everything wait (retried after 50 ms-1 s). What
  was sent, or given up, comes back to the reactor in one call per round.
- A connection with `MAX_WAITING` messages not yet sent stops reading its
  socket (TCP pushes back on the client) and reads again once its backlog
  is down to `RESUME_AT`. A message that waits longer than `send_timeout`
  is dropped and its connection told (`on_error(SendTimeout)`: the
  WebSocket is closed with 1013, the request answered 503).
- Disconnects (`put_disconnect`) are never dropped for being late: they are
  retried for `DISCONNECT_TIMEOUT` (10 minutes), and a connection's
  disconnect leaves only after every message of that connection queued
  before it was sent or given up.

Only the sender thread touches the layer; only the reactor runs callbacks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from channels_core.layers.backoff import Backoff
from channels_core.layers.contract import supports

logger = logging.getLogger("interface_server.sender")

MAX_WAITING = 8
"""Messages of one connection not yet sent before its socket stops being read."""
RESUME_AT = 2
"""A paused connection reads again when its backlog is down to this many."""
DISCONNECT_TIMEOUT = 600.0
"""How long a disconnect is retried before it is given up (and logged as an error)."""
UNAVAILABLE_AFTER = 2.0
"""A layer that failed, or did not answer, for this long is unavailable: HTTP requests get 503 at once."""
MONITOR_INTERVAL = 0.25
"""How often the reactor checks for an unavailable layer."""
MAX_BATCH = 100
"""Messages per `send_many`."""
FULL_BACKOFF = (0.005, 0.05)
"""Retry delays (first, longest) for a full channel."""
DOWN_BACKOFF = (0.05, 1.0)
"""Retry delays (first, longest) for an unreachable layer."""
EPISODE_LOG_AFTER = 1.0
"""A full channel is logged once it has been full this long (short bursts are normal)."""

# Exceptions meaning "the layer cannot be reached": retry everything later.
# (`LayerConnectionError` is a `ConnectionError`; redis-py's own errors are translated by our layer.)
DOWN_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)

MESSAGE, CONNECT, DISCONNECT, CALL = "message", "connect", "disconnect", "call"


class SendTimeout(Exception):
    """The message waited longer than `send_timeout` for its channel or the layer; it was not sent."""


class LayerUnavailable(Exception):
    """The layer failed or did not answer for `UNAVAILABLE_AFTER` seconds; the message was not sent."""


class Item:
    """One message (or call) on its way to the layer, and who to tell how it went."""

    __slots__ = (
        "kind",
        "channel",
        "message",
        "reply_channel",
        "owner",
        "on_sent",
        "on_error",
        "fail_fast",
        "queued_at",
        "deadline",
        "error",
        "result",
        "cancelled",
        "settled",
        "done",
        "backlog",
        "resume",
    )

    def __init__(
        self,
        kind: str,
        channel: str,
        message: Any,
        reply_channel: str | None = None,
        owner: Any = None,
        on_sent: Callable[..., Any] | None = None,
        on_error: Callable[[Exception], Any] | None = None,
        fail_fast: bool = False,
    ) -> None:
        self.kind = kind
        self.channel = channel
        self.message = message  # for CALL: the function
        self.reply_channel = reply_channel
        self.owner = owner
        self.on_sent = on_sent
        self.on_error = on_error
        self.fail_fast = fail_fast  # answered at once (LayerUnavailable) when the layer is unavailable
        self.queued_at = 0.0
        self.deadline = 0.0
        self.error: Exception | None = None
        self.result: Any = None
        self.cancelled = False  # set by the reactor: the thread skips it
        self.settled = False  # reactor side: callbacks have run
        self.done = False  # thread side: sent, failed or given up
        self.backlog: Backlog | None = None  # its connection's counts
        self.resume = False  # its paused connection's backlog is down to RESUME_AT: the reactor resumes it

    def needs_reactor(self) -> bool:
        """Whether the reactor must hear of this item once it is done (a success without callbacks need not)."""
        return self.error is not None or self.on_sent is not None or self.kind == CALL or self.resume

    def __repr__(self) -> str:
        return f"<Item {self.kind} {self.channel} {self.reply_channel}>"


class Backlog:
    """One connection's messages in the sender: `queued` (written by the reactor only) and `finished`
    (written by the sender thread only), so the reactor knows the backlog without hearing of each send."""

    __slots__ = ("queued", "finished", "paused")

    def __init__(self) -> None:
        self.queued = 0
        self.finished = 0
        self.paused = False  # written by the reactor only

    def waiting(self) -> int:
        return self.queued - self.finished


class _Queue:
    """One channel's waiting messages: one lane (FIFO) per connection, served in turn.

    Taking turns keeps a flooding connection from standing in front of
    everyone else's messages: a batch takes at most `PER_LANE` messages
    of each connection before the next connection's.
    """

    __slots__ = ("name", "lanes", "retry_at", "backoff", "blocked_since", "logged", "congested_until", "share_wait")

    def __init__(self, name: str) -> None:
        self.name = name
        self.lanes: dict[str | None, deque[Item]] = {}  # reply channel (None: no connection) -> its messages
        self.congested_until = 0.0  # recently full: each connection gets PER_LANE messages per CONGESTED_TICK
        self.share_wait = False  # retry_at only waits for the next tick's shares (not for room)
        self.retry_at = 0.0
        self.backoff = Backoff(*FULL_BACKOFF)
        self.blocked_since: float | None = None
        self.logged = False

    def __len__(self) -> int:
        return sum(len(lane) for lane in self.lanes.values())

    def __iter__(self) -> Iterator[Item]:
        for lane in list(self.lanes.values()):
            yield from lane

    def append(self, item: Item) -> None:
        lane = self.lanes.get(item.reply_channel)
        if lane is None:
            lane = self.lanes[item.reply_channel] = deque()
        lane.append(item)

    def put_back(self, items: list[Item]) -> None:
        """Return `items` (in their order) to the heads of their lanes."""
        for item in reversed(items):
            lane = self.lanes.get(item.reply_channel)
            if lane is None:
                lane = self.lanes[item.reply_channel] = deque()
            lane.appendleft(item)


PER_LANE = 8
"""Messages of one connection per turn when a batch is taken from a channel."""
CONGESTED_TICK = 0.005
"""A channel that was full in the last `CONGESTED_FOR` s takes `PER_LANE` messages per connection per tick."""
CONGESTED_FOR = 1.0
TICK_SHARE = 8
"""Messages one connection may send to one channel per `CONGESTED_TICK` when the channel is not congested.

Measured with benchmarks/flood_bench.py (2026-12-06): 8 keeps a flooding client from filling the channel faster
than an echo app drains it (others' echo p99 +3-4 ms, the flood gets ~2,100 echoes/s); 16 gave +6 ms, 32 +18 ms.
It equals `PER_LANE` today; the two stay separate knobs."""


class SendQueues:
    """The sender thread's state: per-channel FIFO queues and their retries (no thread, no reactor: testable).

    `add()` takes new items, `step()` sends what may be sent now and returns
    the items that are done (sent, `error` set, or given up), `wait_time()`
    says how long nothing needs doing. `disconnect_op(reply_channel,
    channel, message)` sends a disconnect.
    """

    def __init__(
        self,
        layer: Any,
        disconnect_op: Callable[[str, str, dict], None],
        send_timeout: float,
        disconnect_timeout: float = DISCONNECT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.layer = layer
        self.disconnect_op = disconnect_op
        self.send_timeout = send_timeout
        self.disconnect_timeout = disconnect_timeout
        self.clock = clock
        self.max_batch = max_batch
        self.batches = supports(layer, "batch")
        # Asked when the layer failed and nothing is left to retry it with (`_probe`).
        self.probe: Callable[[], Any] | None = layer.global_statistics if supports(layer, "statistics") else None
        self.ChannelFull: type[BaseException] = getattr(layer, "ChannelFull", None) or _Never
        self.queues: dict[str, _Queue] = {}
        self.calls: deque[Item] = deque()
        self.waiting: dict[str, int] = {}  # reply channel -> its messages queued (not disconnects)
        self.unconnected: set[str] = set()  # reply channels whose websocket.connect was never sent
        self.busy_since: float | None = None  # a layer call is running since
        self.down_since: float | None = None  # the layer has failed since (no success after)
        self.down_until = 0.0
        self.down_backoff = Backoff(*DOWN_BACKOFF)
        self.next_expiry = 0.0
        self.finished_count = 0  # items done (written by this thread only)
        self.lost_disconnects = 0
        self.share_used_up = False
        self.full_counts: dict[str, int] = {}  # channel ("x?" for every "x?y") -> ChannelFull answers (metrics)
        self.expired_log = _RateLimitedCount(
            f"messages waited longer than send_timeout ({send_timeout:g} s): dropped, their"
            " connections closed (WebSocket 1013, HTTP 503)"
        )

    # -- state for the reactor (read from another thread: single attribute reads) -------

    def stalled_for(self, now: float | None = None) -> float:
        """Seconds the layer has been failing, or one call has been running, whichever is longer."""
        now = self.clock() if now is None else now
        stalled = 0.0
        busy, down = self.busy_since, self.down_since
        if busy is not None:
            stalled = now - busy
        if down is not None:
            stalled = max(stalled, now - down)
        return stalled

    def blocked_for(self, channel: str, now: float | None = None) -> float:
        """Seconds `channel` has been full with no message getting in."""
        queue = self.queues.get(channel)
        since = queue.blocked_since if queue is not None else None
        if since is None:
            return 0.0
        return (self.clock() if now is None else now) - since

    def pending(self) -> int:
        return sum(len(q) for q in list(self.queues.values())) + len(self.calls)

    # -- the thread's work -----------------------------------------------------------------

    def add(self, items: Iterable[Item]) -> None:
        now = self.clock()
        for item in items:
            item.queued_at = now
            if item.kind == CALL:
                self.calls.append(item)
                continue
            timeout = self.disconnect_timeout if item.kind == DISCONNECT else self.send_timeout
            item.deadline = now + timeout
            queue = self.queues.get(item.channel)
            if queue is None:
                queue = self.queues[item.channel] = _Queue(item.channel)
            queue.append(item)
            if queue.share_wait:
                # Another connection's message need not wait for the flooding one's next share.
                queue.share_wait = False
                queue.retry_at = 0.0
            if item.kind != DISCONNECT and item.reply_channel is not None:
                self.waiting[item.reply_channel] = self.waiting.get(item.reply_channel, 0) + 1

    def step(self) -> list[Item]:
        """Send everything that may go now; the items done (sent, failed or given up)."""
        done: list[Item] = []
        now = self.clock()
        if now >= self.next_expiry:
            self._expire(now, done)
        if now >= self.down_until:
            for queue in list(self.queues.values()):
                if queue.lanes and queue.retry_at <= now:
                    self._send_queue(queue, done)
                    if self.down_since is not None and self.clock() < self.down_until:
                        break  # the layer is down: everything waits
                if not queue.lanes:
                    del self.queues[queue.name]
        while self.calls:
            item = self.calls.popleft()
            if not item.cancelled:
                try:
                    item.result = self._call(item.message)
                except Exception as exc:
                    item.error = exc
            self._finish(item, done)
        if self.down_since is not None and not self.queues and now >= self.down_until:
            self._probe()
        return done

    def _probe(self) -> None:
        """The layer failed and no message is left to retry it (a request answered 503 and given up).

        Without this, nothing would try the layer again, `stalled_for` would
        grow forever and every HTTP request would be answered 503 at once
        (`Sender.unavailable`) long after the layer came back. A read-only
        question (`global_statistics`) is asked on the down backoff instead;
        a layer without one is taken as up again (the next message tries it).
        """
        if self.probe is None:
            self._up()
            return
        try:
            self._call(self.probe)
        except DOWN_ERRORS as exc:
            self._down(exc)
        except Exception:
            self._up()  # it answered, if oddly: reachable
        else:
            self._up()

    def wait_time(self) -> float | None:
        """Seconds until `step()` has something to do; None when nothing is queued."""
        if self.calls:
            return 0.0
        if not self.queues:
            if self.down_since is not None:  # nothing to retry the layer with: `_probe` it on the backoff
                return max(0.0, min(self.down_until - self.clock(), 0.5))
            return None
        now = self.clock()
        wake = max(self.next_expiry, now + 0.001)
        for queue in self.queues.values():
            wake = min(wake, max(queue.retry_at, self.down_until))
        return max(0.0, min(wake - now, 0.5))

    # -- internals -------------------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.busy_since = self.clock()
        try:
            return fn(*args)
        finally:
            self.busy_since = None

    def _finish(self, item: Item, done: list[Item]) -> None:
        """`item` is done: hand it back, and let its connection's disconnect go if it was the last."""
        item.done = True
        self.finished_count += 1
        backlog = item.backlog
        if backlog is not None:
            backlog.finished += 1
            # Read after the write above: the reactor sets `paused` before it re-reads `finished`.
            if backlog.paused and backlog.queued - backlog.finished <= RESUME_AT:
                item.resume = True
        done.append(item)
        rc = item.reply_channel
        if rc is None or item.kind in (CALL, DISCONNECT):
            if item.kind == DISCONNECT and rc is not None:
                self.unconnected.discard(rc)
            return
        left = self.waiting.get(rc, 0) - 1
        if left > 0:
            self.waiting[rc] = left
        else:
            self.waiting.pop(rc, None)
        if item.kind == CONNECT and (item.error is not None or item.cancelled):
            self.unconnected.add(rc)

    def _ready(self, item: Item) -> bool:
        """A disconnect waits for its connection's earlier messages."""
        return item.kind != DISCONNECT or item.reply_channel not in self.waiting

    def _take(
        self, queue: _Queue, done: list[Item], given: dict[str | None, int] | None = None, share: int = PER_LANE
    ) -> list[Item]:
        """Up to `max_batch` items that may go now, taking turns between connections, each in its order.

        With `given` (the messages each connection gave in this tick), a
        connection gives at most `share` per tick.
        """
        batch: list[Item] = []
        lanes = queue.lanes
        self.share_used_up = False  # a connection had more to send than its share of this tick
        progress = True
        while progress and lanes and len(batch) < self.max_batch:
            progress = False
            for key in list(lanes):
                lane = lanes[key]
                # (Messages of no connection, key None, are not limited.)
                allowed = PER_LANE if given is None or key is None else min(PER_LANE, share - given.get(key, 0))
                taken = 0
                while lane and taken < allowed and len(batch) < self.max_batch:
                    item = lane[0]
                    if item.cancelled:
                        self._finish(lane.popleft(), done)
                    elif item.kind == DISCONNECT and item.reply_channel in self.unconnected:
                        # The application never heard of this connection: nothing to tell it.
                        self._finish(lane.popleft(), done)
                    elif self._ready(item):
                        batch.append(lane.popleft())
                        taken += 1
                    else:
                        break  # a disconnect waiting for its connection's messages on another channel
                if given is not None and key is not None:
                    given[key] = given.get(key, 0) + taken
                    if lane and taken >= allowed and self._ready(lane[0]):
                        self.share_used_up = True
                del lanes[key]
                if lane:
                    lanes[key] = lane  # to the back of the line
                    progress = progress or (taken > 0 and (given is None or key is None))
                if len(batch) >= self.max_batch:
                    break
        return batch

    def _send_queue(self, queue: _Queue, done: list[Item]) -> None:
        """Send what `queue` may send now.

        Each connection sends at most `TICK_SHARE` messages to a channel per
        5 ms tick, and `PER_LANE` while the channel is congested (it was
        full within the last second); both are 8 (1,600/s, a little more
        when other connections' messages start a tick early): a connection
        flooding a channel cannot fill it (and stand in front of everyone
        else's messages in the layer's FIFO); it is slowed instead.
        """
        now = self.clock()
        given: dict[str | None, int] = {}
        share = PER_LANE if queue.congested_until > now else TICK_SHARE
        while queue.lanes:
            batch = self._take(queue, done, given, share)
            if not batch:
                if queue.lanes:
                    # Disconnects waiting for their connections' messages on other channels, or the tick's share
                    # is given: come back shortly.
                    later = CONGESTED_TICK if self.share_used_up else 0.05
                    queue.retry_at = max(queue.retry_at, now + later)
                    queue.share_wait = self.share_used_up
                return
            unsent = self._send_batch(queue.name, batch, done)
            if unsent:
                queue.put_back(unsent)
                return
            if queue.blocked_since is not None:
                self._unblocked(queue)

    def _send_batch(self, channel: str, batch: list[Item], done: list[Item]) -> list[Item]:
        """Send `batch`; the items not sent because the channel is full or the layer down (to retry)."""
        if len(batch) > 1 and self.batches and not any(item.kind == DISCONNECT for item in batch):
            try:
                self._call(self.layer.send_many, channel, [item.message for item in batch])
            except self.ChannelFull:
                pass  # some may still fit: one by one below
            except DOWN_ERRORS as exc:
                self._down(exc)
                return batch
            except Exception:
                pass  # one by one finds the message that cannot be sent
            else:
                self._up()
                for item in batch:
                    self._finish(item, done)
                return []
        for i, item in enumerate(batch):
            try:
                if item.kind == DISCONNECT:
                    self._call(self.disconnect_op, item.reply_channel, channel, item.message)
                else:
                    self._call(self.layer.send, channel, item.message)
            except self.ChannelFull:
                self._full(self.queues[channel] if channel in self.queues else None)
                return batch[i:]
            except DOWN_ERRORS as exc:
                self._down(exc)
                return batch[i:]
            except Exception as exc:
                # Not something waiting can fix (MessageTooLarge, an invalid message): tell the connection.
                item.error = exc
                logger.error("Cannot send to %s (%s: %s)", channel, type(exc).__name__, exc)
            else:
                self._up()
            self._finish(item, done)
        return []

    def _full(self, queue: _Queue | None) -> None:
        if queue is None:
            return
        now = self.clock()
        name = queue.name if "?" not in queue.name else queue.name[: queue.name.index("?") + 1]
        self.full_counts[name] = self.full_counts.get(name, 0) + 1
        queue.congested_until = now + CONGESTED_FOR
        if queue.blocked_since is None:
            queue.blocked_since = now
            queue.logged = False
        elif not queue.logged and now - queue.blocked_since >= EPISODE_LOG_AFTER:
            queue.logged = True
            logger.warning(
                "Channel %s is full: %d messages wait in this server (their sockets are paused; each waits up to %g s)",
                queue.name,
                len(queue),
                self.send_timeout,
            )
        queue.retry_at = now + queue.backoff.next_delay()

    def _unblocked(self, queue: _Queue) -> None:
        if queue.logged:
            logger.warning(
                "Channel %s takes messages again after %.1f s", queue.name, self.clock() - queue.blocked_since
            )
        queue.blocked_since = None
        queue.logged = False
        queue.backoff.reset()
        queue.retry_at = 0.0

    def _down(self, exc: BaseException) -> None:
        now = self.clock()
        if self.down_since is None:
            self.down_since = now
            logger.warning(
                "Cannot send to the channel layer (%s: %s): %d messages wait in this server, retrying"
                " (each waits up to %g s, disconnects up to %g s)",
                type(exc).__name__,
                exc,
                self.pending(),
                self.send_timeout,
                self.disconnect_timeout,
            )
        self.down_until = now + self.down_backoff.next_delay()

    def _up(self) -> None:
        if self.down_since is not None:
            logger.warning("Sending to the channel layer again after %.1f s", self.clock() - self.down_since)
            self.down_since = None
            self.down_backoff.reset()
            self.down_until = 0.0

    def _expire(self, now: float, done: list[Item]) -> None:
        """Give up the items past their deadline (checked at most every 100 ms)."""
        self.next_expiry = now + 0.1
        self.lost_disconnects = 0
        for queue in self.queues.values():
            for key in list(queue.lanes):
                lane = queue.lanes[key]
                if not any(item.deadline <= now for item in lane):
                    continue
                keep = deque(item for item in lane if item.deadline > now)
                for item in lane:
                    if item.deadline <= now:
                        self._expired(item, now, queue.name, done)
                if keep:
                    queue.lanes[key] = keep
                else:
                    del queue.lanes[key]
        if self.lost_disconnects:
            logger.error(
                "Gave up %d disconnect messages after %g s of retrying: the layer never took them",
                self.lost_disconnects,
                self.disconnect_timeout,
            )
        self.expired_log.flush(now)

    def _expired(self, item: Item, now: float, channel: str, done: list[Item]) -> None:
        if item.kind == DISCONNECT:
            item.error = DisconnectLost(f"not sent within {self.disconnect_timeout:g} s")
            self.lost_disconnects += 1
        else:
            item.error = SendTimeout(f"waited {now - item.queued_at:.1f} s for {channel}")
            self.expired_log.add(1)
        self._finish(item, done)

    def give_up(self, reason: str) -> list[Item]:
        """Everything still queued, failed with `reason` (at exit); logs the disconnects lost."""
        done: list[Item] = []
        disconnects = 0
        for queue in self.queues.values():
            for item in queue:
                if item.kind == DISCONNECT:
                    disconnects += 1
                    item.error = DisconnectLost(reason)
                else:
                    item.error = SendTimeout(reason)
                done.append(item)
        self.queues.clear()
        for item in self.calls:
            item.error = SendTimeout(reason)
            done.append(item)
        self.calls.clear()
        for item in done:
            item.done = True
        self.finished_count += len(done)
        if disconnects:
            logger.error(
                "%d disconnect messages were never sent (%s): their consumers will not run", disconnects, reason
            )
        return done


class DisconnectLost(Exception):
    """A disconnect could not be sent within its (long) bound."""


class _RateLimitedCount:
    """Counts events and logs their number at most every 10 s (one line per episode, not per message)."""

    def __init__(self, what: str, every: float = 10.0) -> None:
        self.what = what
        self.every = every
        self.count = 0
        self.logged_at = -1e9

    def add(self, n: int) -> None:
        self.count += n

    def flush(self, now: float) -> None:
        if self.count and now - self.logged_at >= self.every:
            logger.warning("%d %s", self.count, self.what)
            self.count = 0
            self.logged_at = now


class _Never(Exception):
    pass


class SenderThread(threading.Thread):
    """Runs `SendQueues` in its own thread; hands each round's finished items to `deliver` in the reactor."""

    def __init__(self, queues: SendQueues, deliver: Callable[[list[Item]], None], call_in_reactor: Callable) -> None:
        super().__init__(name="layer-sender", daemon=True)
        self.queues = queues
        self.deliver = deliver
        self.call_in_reactor = call_in_reactor
        self.cond = threading.Condition(threading.Lock())
        self.inbox: list[Item] = []
        self.stopping = False

    def hand_over(self, items: list[Item]) -> None:
        """Called from the reactor: queue `items` (in order) and wake the thread."""
        with self.cond:
            self.inbox.extend(items)
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()

    def run(self) -> None:
        queues = self.queues
        while True:
            with self.cond:
                while not self.inbox and not self.stopping:
                    wait = queues.wait_time()
                    if wait == 0:
                        break
                    self.cond.wait(wait)
                    if wait is not None:
                        break
                if self.stopping:
                    return
                new, self.inbox = self.inbox, []
            if new:
                queues.add(new)
            try:
                done = queues.step()
            except Exception:
                logger.exception("The layer sender failed; it goes on")
                time.sleep(0.05)
                continue
            report = [item for item in done if item.needs_reactor()]
            if report:
                self.call_in_reactor(self.deliver, report)


class Sender:
    """The reactor's side: queue messages, pause connections with a backlog, run callbacks.

    `counters` (the server's) gets: `send_timeouts` (messages dropped after
    `send_timeout`), `send_errors` (refused by the layer), `unavailable_503`
    (requests answered at once because the layer is unavailable),
    `disconnects_lost`, `paused` (times a connection stopped being read).
    """

    def __init__(
        self,
        layer: Any,
        send_timeout: float,
        disconnect_op: Callable[[str, str, dict], None],
        counters: dict[str, int],
        reactor: Any,
    ) -> None:
        self.reactor = reactor
        self.counters = counters
        self.queues = SendQueues(layer, disconnect_op, send_timeout)
        self.thread = SenderThread(self.queues, self._done, reactor.callFromThread)
        self.turn: list[Item] = []
        self.scheduled = False
        self.fail_fast: set[Item] = set()  # HTTP requests waiting: answered 503 if the layer becomes unavailable
        self.handed = 0  # items queued (the thread counts those done: `queues.finished_count`)
        self.monitor: Any = None
        self.unavailable_logged = False

    # -- queueing (reactor thread) -------------------------------------------------------

    def put(
        self,
        channel: str,
        message: dict,
        on_error: Callable[[Exception], Any] | None = None,
        owner: Any = None,
        on_sent: Callable[[], Any] | None = None,
        kind: str = MESSAGE,
        fail_fast: bool = False,
    ) -> Item:
        """Send `message` to `channel` from the sender thread, after the turn's earlier sends."""
        item = Item(kind, channel, message, getattr(owner, "reply_channel", None), owner, on_sent, on_error, fail_fast)
        if owner is not None:
            backlog = getattr(owner, "send_backlog", None)
            if backlog is None:
                backlog = owner.send_backlog = Backlog()
            item.backlog = backlog
            backlog.queued += 1
            if not backlog.paused and backlog.queued - backlog.finished >= MAX_WAITING:
                backlog.paused = True
                self.counters["paused"] = self.counters.get("paused", 0) + 1
                _safely(owner.pause_reading)
                # The thread may have finished them before it could see `paused`: look again.
                self._maybe_resume(owner, backlog)
        if fail_fast:
            self.fail_fast.add(item)
        self._queue(item)
        return item

    def put_disconnect(self, reply_channel: str, channel: str, message: dict) -> Item:
        """A disconnect: retried for `DISCONNECT_TIMEOUT`, sent after the connection's earlier messages."""
        item = Item(DISCONNECT, channel, message, reply_channel)
        self._queue(item)
        return item

    def call(
        self,
        fn: Callable[[], Any],
        on_result: Callable[[Any], Any] | None = None,
        on_error: Callable[[Exception], Any] | None = None,
    ) -> Item:
        """Run `fn()` in the sender thread after the messages queued before it were tried once."""
        item = Item(CALL, "", fn, on_sent=on_result, on_error=on_error)
        self._queue(item)
        return item

    def _queue(self, item: Item) -> None:
        self.turn.append(item)
        self.handed += 1
        if not self.scheduled:
            self.scheduled = True
            self.reactor.callLater(0, self.flush)

    def flush(self) -> None:
        """Hand this turn's items to the sender thread (one wake-up per turn)."""
        self.scheduled = False
        turn, self.turn = self.turn, []
        if turn:
            if not self.thread.is_alive() and not self.thread.stopping:
                self.start()
            self.thread.hand_over(turn)

    def start(self) -> None:
        if not self.thread.is_alive() and not self.thread.stopping:
            self.thread.start()
        if self.monitor is None:
            from twisted.internet.task import LoopingCall

            self.monitor = LoopingCall(self._check_available)
            self.monitor.clock = self.reactor
            self.monitor.start(MONITOR_INTERVAL, now=False)

    def stop(self) -> None:
        """Stop the thread; whatever is still queued is given up (and logged)."""
        if self.monitor is not None and self.monitor.running:
            self.monitor.stop()
        self.thread.stop()
        if self.thread.is_alive():
            self.thread.join(2)
        if not self.thread.is_alive():
            self._done(self.queues.give_up("the server stopped"))

    # -- state -------------------------------------------------------------------------------

    def unavailable(self) -> bool:
        """The layer failed or did not answer for `UNAVAILABLE_AFTER` s, or http.request took nothing for as long."""
        return (
            self.queues.stalled_for() >= UNAVAILABLE_AFTER
            or self.queues.blocked_for("http.request") >= UNAVAILABLE_AFTER
        )

    def drained(self) -> bool:
        """Nothing waits to be sent."""
        return self.handed == self.queues.finished_count

    def waiting(self, owner: Any) -> int:
        """How many of `owner`'s messages are not sent yet."""
        backlog = getattr(owner, "send_backlog", None)
        return backlog.waiting() if backlog is not None else 0

    def cancel(self, item: Item, error: Exception) -> None:
        """Answer `item` now with `error`; the thread skips it if it has not sent it yet."""
        item.cancelled = True
        self._settle(item, error)

    # -- results (reactor thread) -----------------------------------------------------------

    def _done(self, items: list[Item]) -> None:
        """The items done that the reactor must hear of (errors, callbacks, connections to resume)."""
        for item in items:
            if item.resume:
                self._maybe_resume(item.owner, item.backlog)
            if not item.settled:
                self._settle(item, item.error)

    def _maybe_resume(self, owner: Any, backlog: Backlog | None) -> None:
        if backlog is not None and backlog.paused and backlog.waiting() <= RESUME_AT:
            backlog.paused = False
            _safely(owner.resume_reading)

    def _settle(self, item: Item, error: Exception | None) -> None:
        item.settled = True
        if item.fail_fast:
            self.fail_fast.discard(item)
        if error is None:
            if item.on_sent is None:
                pass
            elif item.kind == CALL:
                _safely(item.on_sent, item.result)
            else:
                _safely(item.on_sent)
            return
        if isinstance(error, SendTimeout):
            self._count("send_timeouts")
        elif isinstance(error, DisconnectLost):
            self._count("disconnects_lost")
        elif isinstance(error, LayerUnavailable):
            self._count("unavailable_503")
        elif item.kind != CALL:
            self._count("send_errors")
        if item.on_error is not None:
            _safely(item.on_error, error)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _check_available(self) -> None:
        for item in [item for item in self.fail_fast if item.done]:
            self.fail_fast.discard(item)  # sent: the thread did not report it (no callback needed)
        if not self.unavailable():
            if self.unavailable_logged:
                self.unavailable_logged = False
                logger.warning("The channel layer is available again: HTTP requests are queued again")
            return
        if not self.unavailable_logged:
            self.unavailable_logged = True
            logger.warning(
                "The channel layer has not taken a message for %g s: HTTP requests are answered 503 at once"
                " until it does (open WebSockets stay open)",
                UNAVAILABLE_AFTER,
            )
        for item in list(self.fail_fast):
            if not item.done:
                self.cancel(item, LayerUnavailable("the channel layer is unavailable"))


def _safely(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        logger.exception("A send callback raised")
