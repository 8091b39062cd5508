"""Groups on RabbitMQ: one small queue per membership, so the broker does the fan-out.

Names (under the layer's prefix; `#` cannot occur in channel or group names):

- `#groups`, a direct exchange. `send_group` is one publish to it with the
  group as routing key.
- `#m:<group>#<channel>`, a *member queue* per membership, bound to
  `#groups` with the group's name. It holds nothing: `x-message-ttl` 0 with
  dead-lettering to the default exchange and `x-dead-letter-routing-key` =
  the channel's real queue (the process queue `prefix!` for `!` channels)
  moves each copy on at once. So one publish becomes one copy per member,
  even when many members share one process queue. `x-expires` =
  `group_expiry` is the membership's lifetime: `group_add` declares it
  again, which renews it; publishing to it does not. `group_discard`
  deletes it.
- A copy that reaches a process queue names its channel in the header
  `x-first-death-queue` (the member queue), which RabbitMQ sets when
  dead-lettering; the receiver reads the channel from it.
- Capacity: the real queue's `x-max-length` with `reject-publish` drops a
  dead-lettered copy that does not fit (RabbitMQ never nacks or blocks a
  dead-letter), so a full member is skipped and the others get theirs; the
  broker does not say which or how many, so they are not counted.
- Expiry: RabbitMQ drops a message's own `expiration` when dead-lettering,
  so the real queue's queue-wide `x-message-ttl` (`expiry`) is what expires
  a copy, counted from its arrival there (at once), and the receiver drops
  copies older than `expiry` by the sender's time (header `t`).
- Eviction (a member whose message expired unread leaves the group, as on
  Redis): real queues dead-letter what expires in them to `#evict`, a
  headers exchange that keeps only group copies (header `gm`) in the queue
  `#evicted`; a copy that expired in a receiver's buffer is rejected into
  the same place. `send_group` and `group_channels` read `#evicted` first
  (a bounded `basic.get` drain, at most every 0.1 s per process) and delete
  the member queues its copies name.
- Listing (`group_channels`): AMQP cannot list queues or bindings without
  the management plugin, so every `group_add` also appends the channel to
  the group's *record* queue `#r:<group>` (records live `group_expiry`). A
  reader takes the group's lock, an exclusive queue `#lock:<group>` (one
  connection at a time may hold it; the broker frees it if the holder
  dies), gets every record unacknowledged, keeps the channels whose member
  queue exists (binding it again on a probe channel: a passive declare would
  renew its `x-expires`), acks the records of
  gone members and older duplicates and requeues the rest. That is exact:
  a member queue exists exactly as long as the membership.
- `flush` finds the record queues through `#gregistry` (record-queue names,
  kept `group_expiry`), the member queues through the records.
"""

from __future__ import annotations

import time

import pika
import pika.exceptions as pexc
from pika.spec import Queue

from ..errors import LayerConnectionError
from .pipelined import send_nowait

GROUPS_EXCHANGE = "#groups"
EVICT_EXCHANGE = "#evict"
EVICTED_QUEUE = "#evicted"
GROUP_REGISTRY = "#gregistry"
MEMBER = "#m:"
RECORD = "#r:"
LOCK = "#lock:"
ORDER_STATE = "#o:"
"""A connection's ordering state queue (`.ordering`), registered in `#gregistry` so that `flush` finds it."""
GROUP_HEADER = "gm"
"""Set on every group copy: the header the `#evict` exchange matches."""

NOT_FOUND = 404
ACCESS_REFUSED = 403
RESOURCE_LOCKED = 405

_EVICT_INTERVAL = 0.1
_LOCK_WAIT = 10.0
_PRUNE_FLOOR = 64


def member_queue(prefix: str, group: str, channel: str) -> str:
    return f"{prefix}{MEMBER}{group}#{channel}"


def channel_of_member(prefix: str, queue: str) -> str | None:
    """The channel of member queue `queue`, or None if `queue` is not one of `prefix`'s member queues."""
    start = prefix + MEMBER
    if not queue.startswith(start):
        return None
    _, sep, channel = queue[len(start) :].partition("#")
    return channel if sep else None


def record_queue(prefix: str, group: str) -> str:
    return f"{prefix}{RECORD}{group}"


def member_arguments(real_queue: str, group_expiry: float) -> dict:
    return {
        "x-message-ttl": 0,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": real_queue,
        "x-expires": max(1, int(group_expiry * 1000)),
    }


def record_arguments(group_expiry: float) -> dict:
    ms = max(1, int(group_expiry * 1000))
    return {"x-message-ttl": ms, "x-expires": ms}


def evicted_arguments(group_expiry: float) -> dict:
    # Bounded: a layer whose groups nobody sends to must not grow it for ever.
    ms = max(1, int(group_expiry * 1000))
    return {"x-message-ttl": ms, "x-expires": ms, "x-max-length": 100_000}


def group_properties(sent_us: int) -> pika.BasicProperties:
    return pika.BasicProperties(headers={"t": sent_us, GROUP_HEADER: "1"})


class GroupBroker:
    """The group operations of one layer instance, on its publisher's connection (callers hold its lock)."""

    def __init__(self, prefix: str, group_expiry: float) -> None:
        self.prefix = prefix
        self.group_expiry = group_expiry
        self.exchange = prefix + GROUPS_EXCHANGE
        self._connection_seen = None
        self._ensured = 0.0
        self._registered: dict[str, float] = {}  # record queue -> when this connection put it in #gregistry
        self._adds: dict[str, int] = {}  # group -> this process's adds since its last listing
        self._prune_at: dict[str, int] = {}  # group -> adds that trigger a listing (which prunes)
        self._last_evict = 0.0

    def reset(self) -> None:
        """Forget what was declared (a new connection, or a flush)."""
        self._connection_seen = None
        self._registered.clear()
        self._adds.clear()
        self._prune_at.clear()

    def ensure(self, channel, connection) -> None:
        """Declare the exchanges and the eviction queue once per connection, and again before `x-expires`."""
        if self._connection_seen is connection and time.monotonic() - self._ensured < self.group_expiry / 3:
            return
        self._registered.clear()
        channel.exchange_declare(self.exchange, "direct", durable=False)
        channel.exchange_declare(self.prefix + EVICT_EXCHANGE, "headers", durable=False)
        evicted = self.prefix + EVICTED_QUEUE
        channel.queue_declare(evicted, durable=False, arguments=evicted_arguments(self.group_expiry))
        channel.queue_bind(evicted, self.prefix + EVICT_EXCHANGE, arguments={"x-match": "all", GROUP_HEADER: "1"})
        self._connection_seen = connection
        self._ensured = time.monotonic()

    def add(self, channel, connection, group: str, member_of: str, real_queue: str) -> None:
        """Declare (or renew) the membership and record it: two round trips, three every `group_expiry` / 3."""
        self.ensure(channel, connection)
        queue = member_queue(self.prefix, group, member_of)
        record = record_queue(self.prefix, group)
        arguments = member_arguments(real_queue, self.group_expiry)
        # Declared with a reply: RabbitMQ renews a queue's `x-expires` only on a declare it answers.
        channel.queue_declare(queue, durable=False, arguments=arguments)
        bind = Queue.Bind(queue=queue, exchange=self.exchange, routing_key=group, nowait=True)
        now = time.monotonic()
        if now - self._registered.get(record, -1e18) > self.group_expiry / 3:
            # Renew the record queue (a declare with a reply) and list it for flush, now and then.
            send_nowait(channel, [bind])
            channel.queue_declare(record, durable=False, arguments=record_arguments(self.group_expiry))
            registry = self.prefix + GROUP_REGISTRY
            channel.queue_declare(registry, durable=False, arguments=record_arguments(self.group_expiry))
            channel.basic_publish("", registry, record.encode("utf8"))
            self._registered[record] = now
        else:
            # In between, a declare without a reply only re-creates it if it is gone.
            send_nowait(
                channel, [bind, Queue.Declare(queue=record, arguments=record_arguments(self.group_expiry), nowait=True)]
            )
        channel.basic_publish("", record, member_of.encode("utf8"))  # confirmed: everything above is done
        self._adds[group] = self._adds.get(group, 0) + 1

    def should_prune(self, group: str) -> bool:
        """True when this process added to `group` often enough since its last listing that records pile up."""
        return self._adds.get(group, 0) > self._prune_at.get(group, _PRUNE_FLOOR)

    def pruned(self, group: str, live: int) -> None:
        self._adds[group] = 0
        self._prune_at[group] = live + _PRUNE_FLOOR

    def discard(self, channel, group: str, member_of: str) -> None:
        channel.queue_delete(member_queue(self.prefix, group, member_of))  # idempotent in RabbitMQ

    def send(self, channel, connection, group: str, body: bytes, sent_us: int) -> None:
        self.ensure(channel, connection)
        channel.basic_publish(self.exchange, group, body, group_properties(sent_us))

    def evict_due(self) -> bool:
        return time.monotonic() - self._last_evict >= _EVICT_INTERVAL

    def evict(self, channel, connection) -> int:
        """Delete the member queues whose copies expired unread (see the module docstring); how many."""
        self.ensure(channel, connection)
        self._last_evict = time.monotonic()
        members: set[str] = set()
        while True:  # a bounded drain of what is there now, not a wait
            method, properties, _ = channel.basic_get(self.prefix + EVICTED_QUEUE, auto_ack=True)
            if method is None:
                break
            queue = (properties.headers or {}).get("x-first-death-queue")
            if isinstance(queue, bytes):
                queue = queue.decode("utf8", "replace")
            if isinstance(queue, str) and channel_of_member(self.prefix, queue) is not None:
                members.add(queue)
        for queue in sorted(members):
            channel.queue_delete(queue)
        return len(members)

    def members(self, side, probe_of, group: str, probe: bool = True) -> list[str] | None:
        """The live members of `group`, pruning its records; None if another process holds the lock.

        With `probe=False` (the pruning `group_add` does now and then) only
        duplicate records go and nothing is checked: the names recorded,
        live or not, at one get per record instead of a get and a probe.

        `side` is a channel of its own (its unacknowledged records go back
        to the queue if it closes); `probe_of()` gives a channel for passive
        declares, which the broker closes on a missing queue (`probe_of`
        then gives a new one).
        """
        record = record_queue(self.prefix, group)
        lock = self.prefix + LOCK + group
        try:
            side.queue_declare(lock, exclusive=True, auto_delete=True)
        except pexc.ChannelClosedByBroker as exc:
            if exc.reply_code in (RESOURCE_LOCKED, ACCESS_REFUSED):
                return None
            raise
        try:
            if not self._exists(probe_of, record):
                return []
            records: list[tuple[int, str]] = []
            while True:  # every record, held unacknowledged: bounded by the queue's length
                method, _, body = side.basic_get(record, auto_ack=False)
                if method is None:
                    break
                records.append((method.delivery_tag, body.decode("utf8", "replace")))
            latest: dict[str, int] = {}
            for tag, name in records:
                latest[name] = tag  # later records are newer: keep the last of each name
            live = [name for name in latest if not probe or self._is_member(probe_of, group, name)]
            keep = {latest[name] for name in live}
            for tag, _ in records:
                if tag in keep:
                    side.basic_nack(tag, multiple=False, requeue=True)
                else:
                    side.basic_ack(tag)
            side.queue_declare(record, passive=True)  # a round trip: the acks and requeues are done
            self.pruned(group, len(live))
            return sorted(live)
        finally:
            if side.is_open:
                side.queue_delete(lock)

    def _is_member(self, probe_of, group: str, channel: str) -> bool:
        """True if `channel`'s member queue exists, checked by binding it again (idempotent).

        Not a passive declare: RabbitMQ renews a queue's `x-expires` on every
        declare, so listing a group would keep its members alive for ever.
        """
        probe = probe_of()
        try:
            probe.queue_bind(member_queue(self.prefix, group, channel), self.exchange, routing_key=group)
        except pexc.ChannelClosedByBroker as exc:
            if exc.reply_code == NOT_FOUND:
                return False
            raise
        return True

    @staticmethod
    def _exists(probe_of, queue: str) -> bool:
        probe = probe_of()
        try:
            probe.queue_declare(queue, passive=True)
        except pexc.ChannelClosedByBroker as exc:
            if exc.reply_code == NOT_FOUND:
                return False
            raise
        return True


def wait_for_lock(attempt, timeout: float = _LOCK_WAIT):
    """Call `attempt()` until it returns other than None (another reader held the lock), up to `timeout` s."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        got = attempt()
        if got is not None:
            return got
        if time.monotonic() >= deadline:
            raise LayerConnectionError("another process held a RabbitMQ group's listing lock for too long")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def flush_groups(channel, prefix: str, group_expiry: float) -> int:
    """Delete every member and record queue of `prefix`, the exchanges and the eviction queue; queues deleted."""
    registry = prefix + GROUP_REGISTRY
    channel.queue_declare(registry, durable=False, arguments=record_arguments(group_expiry))
    records: set[str] = set()
    others: set[str] = set()
    while True:
        method, _, body = channel.basic_get(registry, auto_ack=True)
        if method is None:
            break
        name = body.decode("utf8", "replace")
        if name.startswith(prefix + RECORD):
            records.add(name)
        elif name.startswith(prefix + ORDER_STATE):
            others.add(name)  # a connection's ordering state (`.ordering`)
    deleted = 0
    for record in sorted(records):
        group = record[len(prefix + RECORD) :]
        channel.queue_declare(record, durable=False, arguments=record_arguments(group_expiry))
        members: set[str] = set()
        while True:
            method, _, body = channel.basic_get(record, auto_ack=True)
            if method is None:
                break
            members.add(body.decode("utf8", "replace"))
        deletes = [Queue.Delete(queue=member_queue(prefix, group, member), nowait=True) for member in sorted(members)]
        send_nowait(channel, deletes + [Queue.Delete(queue=record, nowait=True)])
        deleted += len(deletes) + 1
    send_nowait(channel, [Queue.Delete(queue=name, nowait=True) for name in sorted(others)])
    deleted += len(others)
    for queue in (registry, prefix + EVICTED_QUEUE):
        channel.queue_delete(queue)  # synchronous: the deletes sent without waiting are done too
    channel.exchange_delete(prefix + GROUPS_EXCHANGE)
    channel.exchange_delete(prefix + EVICT_EXCHANGE)
    return deleted
