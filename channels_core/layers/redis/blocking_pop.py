"""A blocking pop on every shard at once: a message on any shard reaches an idle reader at once.

One shard is one BLPOP (or BLMPOP). Several shards each get one; the first
reply wins and the others are cancelled with CLIENT UNBLOCK. A cancel can
race with a message arriving: what such a read popped anyway is kept in the
`Decoder`'s local buffer for the next receive, never dropped. During an
outage the pop retries with backoff until its own deadline instead of
raising, so a worker never dies of one. Each pop waits on its socket with
its own timeout, so a BLPOP never collides with redis-py's `socket_timeout`.
"""

from __future__ import annotations

import logging
import math
import random
import select
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import redis.exceptions as rexc

from ..backoff import Backoff
from ..errors import LayerConnectionError
from .connection import NETWORK_ERRORS, AclRefused, Shard
from .decoding import Decoder
from .lean import replies_of
from .redis_py_private import socket_of

_MIN_BACKOFF = 0.05
_MAX_BACKOFF = 1.0
# How long after its timeout a blocking pop may still be answered: the server's 100 ms timer tick and a slow network.
REPLY_GRACE = 2.0

Plan = list[tuple[Shard, list[bytes]]]
Popped = tuple[bytes, list[bytes], Shard]


class PendingPop:
    """A blocking pop sent on a connection and not yet answered.

    `count` > 1 uses BLMPOP (Redis 7+: up to `count` elements of the first
    non-empty list in one round trip); otherwise BLPOP. `first` commands go
    out in the same write, before everything else; `read_id` reads their
    replies into `first_replies` (an error reply in its place, not raised).
    """

    def __init__(
        self,
        shard: Shard,
        keys: Sequence[bytes],
        timeout: float,
        need_id: bool,
        count: int = 1,
        read_id: bool = True,
        first: Sequence[tuple] = (),
    ) -> None:
        self.shard = shard
        # Redis Cluster, a slot half migrated and these keys gone from its old master: wait on the new one.
        route = shard.ask_route()
        self.conn = route.acquire() if route is not None else shard.acquire()
        if route is not None:
            self.conn.channels_pool = route
        self.client_id: int | None = None
        self.error: LayerConnectionError | None = None
        self._id_unread = False
        self._ok_unread = False
        self._first_unread = len(first)
        self.first_replies: list[Any] = []
        try:
            commands: list[tuple] = list(first)
            if need_id:
                commands.append(("CLIENT", "ID"))
            if route is not None:
                commands.append(("ASKING",))  # just before the pop: ASKING holds for one command
                self._ok_unread = True
            if count > 1 and shard.supports_blmpop:
                commands.append(("BLMPOP", _format_timeout(timeout), len(keys), *keys, "LEFT", "COUNT", count))
            else:
                commands.append(("BLPOP", *keys, _format_timeout(timeout)))
            self.sent_at = time.monotonic()
            lean = replies_of(self.conn)
            if lean is not None:
                lean.send(lean.pack(commands))
            else:
                self.conn.send_packed_command(self.conn.pack_commands(commands))
        except BaseException as exc:
            self._failed_on_connection(exc)
        self._id_unread = need_id
        # After the send: it connected, and the connection's parser decides (see `lean.replies_of`).
        self._lean = replies_of(self.conn)
        if read_id or not need_id:
            self.read_id()

    def read_id(self) -> None:
        """Read the replies sent before the pop's (CLIENT ID, ASKING). Several pops read after all are sent."""
        try:
            for _ in range(self._first_unread):
                try:
                    self.first_replies.append(self._read_response())
                except rexc.ResponseError as exc:
                    self.first_replies.append(exc)
            self._first_unread = 0
            if self._id_unread:
                self.client_id = self._read_response()
                self._id_unread = False
            if self._ok_unread:
                self._read_response()
                self._ok_unread = False
        except BaseException as exc:
            self._failed_on_connection(exc)

    def _read_response(self, last: bool = False) -> Any:
        """One reply, an error reply raised; `last`: the final one owed on this connection."""
        lean = self._lean
        if lean is not None:
            return lean.read_response(last)
        return self.conn.read_response()

    def _can_read(self, timeout: float) -> bool:
        lean = self._lean
        if lean is not None:
            return lean.can_read(timeout)
        return bool(self.conn.can_read(timeout))

    def _failed_on_connection(self, exc: BaseException) -> NoReturn:
        # Called from an `except` block (not a `with` block: a generator context manager costs
        # ~1.4 us a use, on every blocking read): drop the connection, raise the layer's error.
        error = self.shard.dropped(self.conn, exc)
        if error is exc:
            raise exc
        raise error from None

    def ready(self) -> bool:
        """True once the reply (or an error) is there to collect with `result`."""
        if self.error is not None:
            return True
        try:
            return self._can_read(0)
        except NETWORK_ERRORS as exc:
            self._fail(exc)
            return True

    def fileno(self) -> int:
        sock = socket_of(self.conn)
        return sock.fileno() if sock is not None else -1

    def wait(self, timeout: float) -> bool:
        """Block on the socket until the reply arrives or `timeout` passes."""
        if self.error is not None:
            return True
        try:
            return self._can_read(timeout)
        except NETWORK_ERRORS as exc:
            self._fail(exc)
            return True

    def _fail(self, exc: BaseException) -> None:
        self.shard.discard(self.conn)
        self.error = self.shard.failed(exc)

    def result(self) -> tuple[bytes, list[bytes]] | None:
        """Read the reply (call once it is ready) and give the connection back: (key, elements)."""
        if self.error is not None:
            raise self.error
        try:
            reply = self._read_response(last=True)
        except NETWORK_ERRORS as exc:
            self._fail(exc)
            raise self.error from None
        except rexc.NoPermissionError as exc:
            self.shard.discard(self.conn)
            raise self.shard.acl_refused(exc) from None
        except (rexc.AskError, rexc.TryAgainError, rexc.ClusterDownError) as exc:
            # Redis Cluster: the slot moved (MOVED is an AskError) or a failover is under way. The pop
            # did not run; the layer waits and pops again from the master the slot map names then.
            self.shard.release(self.conn)
            raise self.shard.failed(exc) from None
        except BaseException:
            self.shard.discard(self.conn)
            raise
        self.shard.release(self.conn)
        self.shard.succeeded(self.sent_at)
        if not reply:
            return None
        return (reply[0], reply[1]) if isinstance(reply[1], list) else (reply[0], [reply[1]])

    def abandon(self) -> None:
        self.shard.discard(self.conn)


logger = logging.getLogger("channels_core.layers.redis")
_UNBLOCK_REFUSED: set[str] = set()
"""Servers whose refusal of CLIENT UNBLOCK was logged (once each)."""


def _format_timeout(timeout: float) -> int:
    # Whole seconds: Redis before 6.0 rejects fractional BLPOP timeouts.
    return max(1, math.ceil(timeout))


def wait_any(pending: list[PendingPop], timeout: float) -> list[PendingPop]:
    """Wait until at least one pending pop has its reply (or `timeout` passes); return those ready."""
    ready = [p for p in pending if p.ready()]
    if ready or timeout <= 0:
        return ready
    poller = select.poll()
    for p in pending:
        fd = p.fileno()
        if fd < 0:
            return [p]
        poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    events = poller.poll(timeout * 1000)
    return [p for p in pending if p.ready()] if events else []


class BlockingPop:
    """Blocking reads of one layer; `closed` set wakes them (they return within one blocking read)."""

    def __init__(self, decoder: Decoder, blocking_timeout: float, closed: threading.Event) -> None:
        self.decoder = decoder
        self.blocking_timeout = blocking_timeout
        self.closed = closed

    def pop(self, plan: Plan, limit: int, timeout: float | None = None) -> list[tuple[str, dict]]:
        """Up to `limit` messages from the keys of `plan`, waiting up to `timeout` (None: `blocking_timeout`).

        With `timeout`, the wait ends to the millisecond; otherwise Redis ends
        it on its own timer tick.
        """
        deadline = time.monotonic() + (self.blocking_timeout if timeout is None else timeout)
        backoff = Backoff(_MIN_BACKOFF, _MAX_BACKOFF)
        while not self.closed.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                for shard, _ in plan:
                    if shard.clock_offset_ms is None:
                        shard.handshake()
                if timeout is not None:
                    popped = self._pop_many(plan, remaining, limit, exact=True)
                elif len(plan) == 1:
                    popped = self._pop_one(plan[0], remaining, limit)
                else:
                    popped = self._pop_many(plan, remaining, limit)
            except LayerConnectionError:
                self.closed.wait(min(backoff.next_delay(), max(remaining, 0)))
                continue
            if popped is None:
                continue
            key, elements, shard = popped
            got = self.decoder.unpack_all(key, elements, shard, limit)
            if got:
                return got
        return []

    def pop_after(
        self, command: tuple, plan: Plan, limit: int, timeout: float, done: Callable[[Any], bool]
    ) -> tuple[Any, list[tuple[str, dict]]]:
        """`command`, then a pop like `pop(plan, limit, timeout)`, written together: `(command's reply, messages)`.

        One write and one round trip fewer than the command and then the
        pop: a worker sends its last reply with its next read. `plan` names
        one shard. When `done(reply)` is false (the command failed: a full
        channel, a script the server lost) the pop is cancelled at once and
        whatever it took anyway is kept in the `Decoder` for the next
        receive, so the caller can retry the command first. A pop that fails
        after the command went returns no messages (the caller reads again);
        only a failure before the write raises (`LayerConnectionError`).
        """
        ((shard, keys),) = plan
        keys = random.sample(keys, len(keys)) if len(keys) > 1 else keys
        pending = PendingPop(shard, keys, timeout, need_id=True, count=limit, first=[command])
        reply = pending.first_replies[0]
        popped = None
        try:
            if done(reply) and pending.wait(timeout):
                popped = pending.result()
                pending = None
        except LayerConnectionError:
            pending = None  # result() dropped the connection; the command's reply is already in
        finally:
            if pending is not None:
                for _, late in _cancel_all([pending]):
                    if late:
                        self.decoder.stash(late[0], late[1], shard)
        if not popped:
            return reply, []
        return reply, self.decoder.unpack_all(popped[0], popped[1], shard, limit)

    def _pop_one(self, shard_keys: tuple[Shard, list[bytes]], timeout: float, count: int) -> Popped | None:
        shard, keys = shard_keys
        if len(keys) > 1:
            keys = random.sample(keys, len(keys))
        pending = PendingPop(shard, keys, timeout, need_id=False, count=count)
        if not pending.wait(timeout + REPLY_GRACE):
            pending.abandon()
            return None
        reply = pending.result()
        return (reply[0], reply[1], shard) if reply else None

    def _pop_many(self, plan: Plan, timeout: float, count: int, exact: bool = False) -> Popped | None:
        """A blocking pop on every shard at once; the first reply wins, the others are cancelled.

        With `exact`, the wait ends at `timeout` to the millisecond: the server
        side only knows whole seconds (and checks them on its timer tick), so
        each read still waiting then is cancelled with CLIENT UNBLOCK. An
        element that raced in before a cancel is returned or kept, never dropped.
        """
        pending: list[PendingPop] = []
        error = None
        for shard, keys in plan:
            try:
                keys = random.sample(keys, len(keys))
                pending.append(PendingPop(shard, keys, timeout, need_id=True, count=count, read_id=False))
            except LayerConnectionError as exc:
                error = exc
        for p in list(pending):
            try:
                p.read_id()
            except LayerConnectionError as exc:
                pending.remove(p)
                error = exc
        if not pending:
            raise error or LayerConnectionError("no Redis server reachable")
        winner = None
        end = time.monotonic() + timeout + (0.0 if exact else REPLY_GRACE)
        try:
            while pending and winner is None:
                ready = wait_any(pending, end - time.monotonic())
                if not ready:
                    break
                for p in ready:
                    pending.remove(p)
                    try:
                        reply = p.result()
                    except LayerConnectionError:
                        continue
                    if reply and winner is None:
                        winner = (reply[0], reply[1], p.shard)
                    elif reply:
                        self.decoder.stash(reply[0], reply[1], p.shard)
        finally:
            for p, reply in _cancel_all(pending):
                if reply and winner is None:
                    winner = (reply[0], reply[1], p.shard)
                elif reply:
                    self.decoder.stash(reply[0], reply[1], p.shard)
        if winner is None and error is not None:
            raise error
        return winner


def _cancel_all(pending: list[PendingPop]) -> list[tuple[PendingPop, tuple[bytes, list[bytes]] | None]]:
    """Cancel pops still waiting: one CLIENT UNBLOCK pipeline per server, then collect what each popped anyway."""
    by_server: dict[int, tuple[Shard, list[PendingPop]]] = {}
    for p in pending:
        owner = p.shard.owner_of(p.conn)
        by_server.setdefault(id(owner), (owner, []))[1].append(p)
    out: list[tuple[PendingPop, tuple[bytes, list[bytes]] | None]] = []
    for owner, pops in by_server.values():
        if len(pops) == 1:
            out.append((pops[0], _cancel(pops[0])))
            continue
        try:
            owner.pipeline([("CLIENT", "UNBLOCK", p.client_id) for p in pops])
        except LayerConnectionError:
            for p in pops:
                p.abandon()
                out.append((p, None))
            continue
        except (rexc.ResponseError, AclRefused):
            out += [(p, _cancel(p)) for p in pops]  # one at a time, which explains a refusal once
            continue
        out += [(p, _collect(p)) for p in pops]
    return out


def _collect(pending: PendingPop) -> tuple[bytes, list[bytes]] | None:
    """The reply of an unblocked pop: what it popped before the unblock landed, or None."""
    if not pending.wait(REPLY_GRACE):
        pending.abandon()
        return None
    try:
        return pending.result()
    except LayerConnectionError:
        return None  # result() already dropped the connection


def _cancel(pending: PendingPop) -> tuple[bytes, list[bytes]] | None:
    """Unblock a pending pop and return what it popped before the unblock landed, if anything."""
    try:
        # The server the pop waits on, even if the slot map changed since (Redis Cluster).
        pending.shard.owner_of(pending.conn).execute("CLIENT", "UNBLOCK", pending.client_id)
    except LayerConnectionError:
        pending.abandon()
        return None
    except (rexc.ResponseError, AclRefused) as exc:
        # Refused, e.g. an ACL user without +client|unblock (`-@dangerous`): closing the connection
        # ends the pop instead (a reconnect per cancel). It used to raise out of receive().
        if pending.shard.label not in _UNBLOCK_REFUSED:
            _UNBLOCK_REFUSED.add(pending.shard.label)
            logger.error(
                "Redis at %s refuses CLIENT UNBLOCK (%s); blocking reads on several servers then reconnect each "
                "time: allow it to the layer's ACL user (+client|unblock)",
                pending.shard.label,
                exc,
            )
        if pending.ready():
            try:
                return pending.result()  # popped before we gave up on it: keep it
            except LayerConnectionError:
                return None
        pending.abandon()
        return None
    return _collect(pending)
