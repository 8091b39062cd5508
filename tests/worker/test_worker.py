"""The Worker in-process, on the in-memory layer: Channels 1.x consumer semantics, and never dying.

Each test builds `ChannelLayerWrapper(InMemoryChannelLayer, routing)` and
either hands one message to `Worker.handle` or runs the real loop in a
thread (signal handlers off) until a condition holds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from channels_core import consumer_sends
from channels_core.asgi import ChannelLayerWrapper
from channels_core.channel import Channel, Group
from channels_core.consumer_sends import pending_message_store
from channels_core.exceptions import (
    ChannelSocketException,
    ConsumeLater,
    DenyConnection,
    WebsocketCloseException,
)
from channels_core.layers import InMemoryChannelLayer, LayerConnectionError
from channels_core.signals import consumer_finished, consumer_started, worker_ready
from routing import include, route
from tests.support.waiting import wait_for
from worker import Worker, WorkerGroup
from worker.worker import WAKE_INTERVAL, filter_channels

CLIENT = ["10.0.0.1", 5000]


def make_layer(routing: list, **options) -> ChannelLayerWrapper:
    options.setdefault("blocking_timeout", 0.05)
    return ChannelLayerWrapper(InMemoryChannelLayer(**options), "test", routing)


def new_reply(layer) -> str:
    return layer.new_channel("test.reply?")


def replies(layer, channel: str) -> list[dict]:
    """Everything waiting on `channel` (non-blocking)."""
    out = []
    while True:
        got, content = layer.receive([channel], block=False)
        if got is None:
            return out
        out.append(content)


class Running:
    """`worker.run()` in a thread; `stop()` ends the loop and joins."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.worker.termed = True
        for sub in getattr(self.worker, "workers", ()):
            sub.termed = True
        self.thread.join(10)
        assert not self.thread.is_alive(), "the worker loop did not stop"
        if self.error is not None:
            raise self.error

    def __exit__(self, *exc_info) -> None:
        self.stop()


def run_until(worker: Worker, predicate: Callable[[], object], timeout: float = 5.0) -> None:
    with Running(worker):
        assert wait_for(predicate, timeout), "condition not reached while the worker ran"


# -- consumer atomicity ----------------------------------------------------------------------


def test_sends_are_buffered_until_the_consumer_ends():
    seen_inside = []

    def consumer(message, **kwargs):
        message.reply_channel.send({"text": "one"})
        Channel("test.other", channel_layer=message.channel_layer).send({"n": 1})
        seen_inside.append(replies(message.channel_layer, message.reply_channel.name))
        seen_inside.append(replies(message.channel_layer, "test.other"))
        message.reply_channel.send({"text": "two"})

    layer = make_layer([route("websocket.receive", consumer)])
    reply = new_reply(layer)
    Worker(layer, signal_handlers=False).handle("websocket.receive", {"reply_channel": reply, "text": "x"})
    assert seen_inside == [[], []]
    assert replies(layer, reply) == [{"text": "one"}, {"text": "two"}]
    assert replies(layer, "test.other") == [{"n": 1}]


def test_immediately_bypasses_the_buffer():
    seen_inside = []

    def consumer(message, **kwargs):
        message.reply_channel.send({"text": "now"}, immediately=True)
        seen_inside.extend(replies(message.channel_layer, message.reply_channel.name))
        message.reply_channel.send({"text": "later"})

    layer = make_layer([route("websocket.receive", consumer)])
    reply = new_reply(layer)
    Worker(layer, signal_handlers=False).handle("websocket.receive", {"reply_channel": reply, "text": "x"})
    assert seen_inside == [{"text": "now"}]
    assert replies(layer, reply) == [{"text": "later"}]


def test_group_sends_are_buffered_too():
    layer = make_layer([])
    member = new_reply(layer)
    Group("room", channel_layer=layer).add(member)
    seen_inside = []

    def consumer(message, **kwargs):
        Group("room", channel_layer=message.channel_layer).send({"text": "hello"})
        seen_inside.extend(replies(message.channel_layer, member))

    layer.router = None
    layer.routing = [route("custom.channel", consumer)]
    Worker(layer, signal_handlers=False).handle("custom.channel", {})
    assert seen_inside == []
    assert replies(layer, member) == [{"text": "hello"}]


def test_buffered_sends_are_flushed_when_the_consumer_raises_then_the_failure_answer(caplog):
    def consumer(message, **kwargs):
        message.reply_channel.send({"text": "partial"})
        raise RuntimeError("boom")

    layer = make_layer([route("websocket.receive", consumer)])
    reply = new_reply(layer)
    with caplog.at_level(logging.ERROR, logger="worker"):
        Worker(layer, signal_handlers=False).handle("websocket.receive", {"reply_channel": reply, "text": "x"})
    # In the order the client needs them: what the consumer sent, then the close.
    assert replies(layer, reply) == [{"text": "partial"}, {"close": 1011}]
    assert not pending_message_store.active


def test_sends_outside_a_consumer_go_out_at_once():
    layer = make_layer([])
    assert not pending_message_store.active
    Channel("test.direct", channel_layer=layer).send({"a": 1})
    assert replies(layer, "test.direct") == [{"a": 1}]


# -- ConsumeLater ----------------------------------------------------------------------------


def test_consume_later_requeues_with_retries_then_drops(caplog):
    calls = []

    def consumer(message, **kwargs):
        calls.append((message.content.get("__retries__", 0), getattr(message, "__doomed__", False)))
        raise ConsumeLater()

    layer = make_layer([route("test.channel", consumer)])
    layer.send("test.channel", {"x": 1})
    worker = Worker(layer, message_retries=3, signal_handlers=False)
    with caplog.at_level(logging.WARNING, logger="worker"):
        run_until(worker, lambda: "after 3 retries" in caplog.text)
        time.sleep(0.1)  # nothing more may come
    assert calls == [(0, False), (1, False), (2, False), (3, True)]
    assert "Dropped a message on test.channel after 3 retries (ConsumeLater)" in caplog.text
    assert replies(layer, "test.channel") == []


def test_consume_later_puts_the_message_at_the_back_of_its_channel():
    order = []

    def consumer(message, **kwargs):
        order.append((message["name"], message.content.get("__retries__", 0)))
        if message["name"] == "a" and not message.content.get("__retries__"):
            raise ConsumeLater()

    layer = make_layer([route("test.channel", consumer)])
    layer.send("test.channel", {"name": "a"})
    layer.send("test.channel", {"name": "b"})
    worker = Worker(layer, signal_handlers=False)
    # One message at a time, as the loop does, but deterministic: the layer receive order is FIFO.
    for _ in range(3):
        channel, content = layer.receive(["test.channel"], block=False)
        worker.handle(channel, content)
    assert order == [("a", 0), ("b", 0), ("a", 1)]


def test_consume_later_on_a_full_channel_is_dropped_after_bounded_tries(caplog):
    def consumer(message, **kwargs):
        # Refill the channel the message came from, so the requeue cannot fit.
        message.channel_layer.send("test.channel", {"filler": True})
        raise ConsumeLater()

    layer = make_layer([route("test.channel", consumer)], channel_capacity={"test.channel": 1})
    worker = Worker(layer, signal_handlers=False)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="worker"):
        worker.handle("test.channel", {"x": 1})
    assert 0.4 < time.monotonic() - started < 3
    assert "stayed full while requeueing" in caplog.text
    assert replies(layer, "test.channel") == [{"filler": True}]


# -- DenyConnection and ChannelSocketException ------------------------------------------------


def test_deny_connection_on_connect_sends_close():
    def deny(message, **kwargs):
        raise DenyConnection()

    layer = make_layer([route("websocket.connect", deny)])
    reply = new_reply(layer)
    Worker(layer, signal_handlers=False).handle("websocket.connect", {"reply_channel": reply, "path": "/"})
    assert replies(layer, reply) == [{"close": True}]


def test_deny_connection_elsewhere_is_logged(caplog):
    def deny(message, **kwargs):
        raise DenyConnection()

    layer = make_layer([route("websocket.receive", deny)])
    reply = new_reply(layer)
    with caplog.at_level(logging.ERROR, logger="worker"):
        Worker(layer, signal_handlers=False).handle("websocket.receive", {"reply_channel": reply, "text": ""})
    assert replies(layer, reply) == []
    assert "only a websocket.connect consumer can deny" in caplog.text
    assert "websocket.receive" in caplog.text


def test_websocket_close_exception_closes_with_its_code():
    def close(message, **kwargs):
        message.reply_channel.send({"text": "bye"})
        raise WebsocketCloseException(4001)

    layer = make_layer([route("websocket.receive", close)])
    reply = new_reply(layer)
    Worker(layer, signal_handlers=False).handle("websocket.receive", {"reply_channel": reply, "text": ""})
    assert replies(layer, reply) == [{"text": "bye"}, {"close": 4001}]


def test_channel_socket_exception_run_is_called_and_its_failure_logged(caplog):
    ran = []

    class Custom(ChannelSocketException):
        def run(self, message):
            ran.append(message.channel.name)

    class Broken(ChannelSocketException):
        def run(self, message):
            raise KeyError("no")

    def custom(message, **kwargs):
        raise Custom()

    def broken(message, **kwargs):
        raise Broken()

    layer = make_layer([route("test.custom", custom), route("test.broken", broken)])
    worker = Worker(layer, signal_handlers=False)
    worker.handle("test.custom", {})
    with caplog.at_level(logging.ERROR, logger="worker"):
        worker.handle("test.broken", {})
    assert ran == ["test.custom"]
    assert "Handling Broken for a message on test.broken failed" in caplog.text


# -- consumer failures -------------------------------------------------------------------------


def crash(message, **kwargs):
    raise RuntimeError("consumer exploded")


@pytest.mark.parametrize(
    "channel, expected",
    [
        ("http.request", [{"status": 500}]),
        ("websocket.connect", [{"close": 1011}]),
        ("websocket.receive", [{"close": 1011}]),
        ("websocket.disconnect", []),
    ],
)
def test_consumer_exception_is_logged_and_answered(caplog, channel, expected):
    layer = make_layer([route(channel, crash)])
    reply = new_reply(layer)
    worker = Worker(layer, signal_handlers=False)
    with caplog.at_level(logging.ERROR, logger="worker"):
        worker.handle(channel, {"reply_channel": reply, "method": "GET", "path": "/x", "client": CLIENT})
    got = replies(layer, reply)
    assert [{k: m[k] for k in e} for m, e in zip(got, expected, strict=True)] == expected
    if channel == "http.request":
        assert got[0]["content"].startswith(b"500")
    record = next(r for r in caplog.records if r.name == "worker" and r.levelno == logging.ERROR)
    assert f"failed on {channel} from 10.0.0.1:5000" in record.getMessage()
    assert "consumer exploded" in caplog.text  # with the traceback
    assert worker.failures == 1


def test_worker_goes_on_with_the_next_message_after_a_failure():
    handled = []

    def maybe_crash(message, **kwargs):
        if message["n"] == 1:
            raise RuntimeError("first fails")
        handled.append(message["n"])

    layer = make_layer([route("test.channel", maybe_crash)])
    for n in (1, 2, 3):
        layer.send("test.channel", {"n": n})
    worker = Worker(layer, signal_handlers=False)
    run_until(worker, lambda: len(handled) == 2)
    assert sorted(handled) == [2, 3]
    assert worker.failures == 1


def test_unrouted_message_is_logged_and_dropped(caplog):
    layer = make_layer([route("websocket.connect", crash, path=r"^/only/$")])
    with caplog.at_level(logging.ERROR, logger="worker"):
        Worker(layer, signal_handlers=False).handle(
            "websocket.connect", {"reply_channel": new_reply(layer), "path": "/other/", "client": CLIENT}
        )
    assert "No route matches a message on websocket.connect from 10.0.0.1:5000" in caplog.text


def test_kwargs_from_routing_reach_the_consumer_with_the_full_message():
    got = []

    def room(message, **kwargs):
        got.append((message["path"], kwargs))

    layer = make_layer([include([route("websocket.connect", room, path=r"^/(?P<name>\w+)/$")], path=r"^/rooms")])
    Worker(layer, signal_handlers=False).handle("websocket.connect", {"reply_channel": "x?y", "path": "/rooms/abc/"})
    assert got == [("/rooms/abc/", {"name": "abc"})]


# -- signals -----------------------------------------------------------------------------------


def test_signals_fire_around_every_consumer_and_on_ready():
    events = []

    def on_started(sender, environ, **kwargs):
        events.append(("started", environ))

    def on_finished(sender, **kwargs):
        events.append(("finished",))

    def on_ready(sender, **kwargs):
        events.append(("ready", type(sender).__name__))

    def consumer(message, **kwargs):
        events.append(("consumer",))
        if message.get("fail"):
            raise RuntimeError("fails")

    consumer_started.connect(on_started)
    consumer_finished.connect(on_finished)
    worker_ready.connect(on_ready)
    try:
        layer = make_layer([route("test.channel", consumer)])
        worker = Worker(layer, signal_handlers=False)
        worker.ready()
        worker.handle("test.channel", {})
        worker.handle("test.channel", {"fail": True})
    finally:
        consumer_started.disconnect(on_started)
        consumer_finished.disconnect(on_finished)
        worker_ready.disconnect(on_ready)
    cycle = [("started", {}), ("consumer",), ("finished",)]
    assert events == [("ready", "Worker"), *cycle, *cycle]


def test_the_worker_buffers_sends_itself_around_the_signals():
    # Not through signal receivers: which receivers are connected, and in what order, changes nothing.
    seen_by_receivers = []

    def on_started(sender, **kwargs):
        seen_by_receivers.append(("started", pending_message_store.active))

    def on_finished(sender, **kwargs):
        seen_by_receivers.append(("finished", pending_message_store.active))

    def consumer(message, **kwargs):
        message.reply_channel.send({"text": "one"})
        assert replies(layer, reply) == []
        message.reply_channel.send({"text": "two"})

    consumer_started.connect(on_started)
    consumer_finished.connect(on_finished)
    try:
        layer = make_layer([route("websocket.receive", consumer)])
        reply = new_reply(layer)
        Worker(layer, signal_handlers=False).handle("websocket.receive", {"reply_channel": reply})
    finally:
        consumer_started.disconnect(on_started)
        consumer_finished.disconnect(on_finished)
    assert replies(layer, reply) == [{"text": "one"}, {"text": "two"}]
    # Buffering from before the first receiver; flushed before the first finished receiver.
    assert seen_by_receivers == [("started", True), ("finished", False)]


def test_a_failing_consumer_finished_receiver_neither_stops_the_flush_nor_the_worker(caplog):
    def bad_receiver(sender, **kwargs):
        raise RuntimeError("receiver broke")

    def consumer(message, **kwargs):
        message.reply_channel.send({"text": "ok"})

    consumer_finished.connect(bad_receiver)
    try:
        layer = make_layer([route("websocket.receive", consumer)])
        reply = new_reply(layer)
        with caplog.at_level(logging.ERROR, logger="worker"):
            Worker(layer, signal_handlers=False).handle("websocket.receive", {"reply_channel": reply})
    finally:
        consumer_finished.disconnect(bad_receiver)
    assert replies(layer, reply) == [{"text": "ok"}]
    assert "receiver broke" in caplog.text


# -- backpressure and layer failures ------------------------------------------------------------


def test_channel_full_on_flush_is_retried_then_dropped_and_counted(caplog, monkeypatch):
    monkeypatch.setattr(consumer_sends, "FLUSH_RETRY_SECONDS", 0.3)

    def consumer(message, **kwargs):
        for n in range(3):
            message.reply_channel.send({"n": n})

    layer = make_layer([route("websocket.receive", consumer)], channel_capacity={"test.reply?*": 1})
    reply = new_reply(layer)
    dropped = pending_message_store.dropped
    started = time.monotonic()
    with caplog.at_level(logging.ERROR):
        Worker(layer, signal_handlers=False).handle("websocket.receive", {"reply_channel": reply})
    elapsed = time.monotonic() - started
    assert pending_message_store.dropped == dropped + 2
    assert 0.5 < elapsed < 3  # two bounded retries of ~0.3 s
    assert replies(layer, reply) == [{"n": 0}]
    assert caplog.text.count("stayed full") == 2


def test_channel_full_on_flush_succeeds_once_the_reader_catches_up(monkeypatch):
    monkeypatch.setattr(consumer_sends, "FLUSH_RETRY_SECONDS", 3)

    def consumer(message, **kwargs):
        for n in range(3):
            message.reply_channel.send({"n": n})

    layer = make_layer([route("websocket.receive", consumer)], channel_capacity={"test.reply?*": 1})
    reply = new_reply(layer)
    got = []

    def reader():
        deadline = time.monotonic() + 5
        while len(got) < 3 and time.monotonic() < deadline:
            got.extend(replies(layer, reply))
            time.sleep(0.05)

    dropped = pending_message_store.dropped
    thread = threading.Thread(target=reader)
    thread.start()
    Worker(layer, signal_handlers=False).handle("websocket.receive", {"reply_channel": reply})
    thread.join()
    assert got == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert pending_message_store.dropped == dropped


def test_full_reply_channel_does_not_kill_the_running_worker(monkeypatch):
    monkeypatch.setattr(consumer_sends, "FLUSH_RETRY_SECONDS", 0.1)
    handled = []

    def consumer(message, **kwargs):
        for n in range(3):
            message.reply_channel.send({"n": n})
        handled.append(message["i"])

    layer = make_layer([route("test.channel", consumer)], channel_capacity={"test.reply?*": 1})
    reply = new_reply(layer)
    for i in range(2):
        layer.send("test.channel", {"reply_channel": reply, "i": i})
    worker = Worker(layer, signal_handlers=False)
    run_until(worker, lambda: len(handled) == 2)
    assert sorted(handled) == [0, 1]


class FlakyLayer(InMemoryChannelLayer):
    """A read raises LayerConnectionError `failures` times (a Redis outage), then works."""

    def __init__(self, failures: int, **options) -> None:
        super().__init__(**options)
        self.failures = failures
        self.calls = 0

    def receive_batch(self, channels, max_messages=100, block=False, timeout=None):
        # The worker reads with receive_batch(timeout=) (the in-memory receive() goes through it too).
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise LayerConnectionError("Redis at 127.0.0.1:1 is unreachable: connection refused")
        return super().receive_batch(channels, max_messages, block, timeout)


def test_receive_failures_are_logged_once_backed_off_and_survived(caplog):
    handled = []
    layer = ChannelLayerWrapper(
        FlakyLayer(failures=4, blocking_timeout=0.05), "test", [route("test.channel", lambda m: handled.append(1))]
    )
    layer.send("test.channel", {})
    worker = Worker(layer, signal_handlers=False)
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG, logger="worker"):
        run_until(worker, lambda: handled)
    elapsed = time.monotonic() - started
    # Backoff 0.05 + 0.1 + 0.2 + 0.4 before the fifth receive works.
    assert elapsed >= 0.7
    assert worker.receive_errors == 4
    errors = [r for r in caplog.records if r.name == "worker" and r.levelno >= logging.ERROR]
    assert len(errors) == 1, "one error line per outage, not one per retry"
    assert "LayerConnectionError" in errors[0].getMessage()
    assert "works again" in caplog.text


# -- channel selection --------------------------------------------------------------------------


def test_only_and_exclude_channel_globs():
    channels = {"http.request", "websocket.connect", "websocket.receive", "websocket.disconnect", "custom.x"}
    assert filter_channels(channels, ["websocket.*"], None) == [
        "websocket.connect",
        "websocket.disconnect",
        "websocket.receive",
    ]
    assert filter_channels(channels, None, ["websocket.*", "custom.?"]) == ["http.request"]
    assert filter_channels(channels, ["websocket.*", "http.*"], ["*.receive"]) == [
        "http.request",
        "websocket.connect",
        "websocket.disconnect",
    ]
    assert filter_channels(channels, ["nothing.*"], None) == []


def test_worker_listens_only_on_the_selected_channels():
    handled = []
    layer = make_layer(
        [
            route("websocket.connect", lambda m: handled.append("c")),
            route("http.request", lambda m: handled.append("h")),
        ]
    )
    worker = Worker(layer, only_channels=["websocket.*"], signal_handlers=False)
    assert worker.channels() == ["websocket.connect"]
    request = {"reply_channel": "r!x", "method": "GET", "path": "/"}
    layer.send("http.request", request)
    layer.send("websocket.connect", {"reply_channel": "r!y"})
    run_until(worker, lambda: handled)
    time.sleep(0.1)
    assert handled == ["c"]
    assert replies(layer, "http.request") == [request]


def test_worker_with_no_channels_refuses_to_run():
    layer = make_layer([route("websocket.connect", crash)])
    worker = Worker(layer, exclude_channels=["*"], signal_handlers=False)
    with pytest.raises(ValueError, match="no channels to listen on"):
        worker.run()


# -- shutdown and threads -------------------------------------------------------------------------


def test_sigterm_handler_never_raises_and_an_idle_worker_stops_within_the_wake_interval():
    layer = make_layer([route("test.channel", crash)], blocking_timeout=30)
    worker = Worker(layer, signal_handlers=False)
    worker.sigterm_handler(15, None)  # no SystemExit: a message popped in that instant would be lost
    assert worker.termed
    worker.sigterm_handler(15, None)  # a second signal changes nothing

    idle = Worker(layer, signal_handlers=False)
    running = Running(idle)
    with running:
        time.sleep(0.2)  # blocked in its read
        idle.sigterm_handler(15, None)
        started = time.monotonic()
        running.thread.join(5)
        stopped_after = time.monotonic() - started
    assert stopped_after < WAKE_INTERVAL + 0.5  # not the layer's 30 s blocking timeout


def test_worker_group_sigterm_never_raises_and_every_thread_stops():
    layer = make_layer([route("test.channel", crash)], blocking_timeout=30)
    group = WorkerGroup(layer, n_threads=3, signal_handlers=False)
    running = Running(group)
    with running:
        time.sleep(0.2)
        group.sigterm_handler(15, None)
        started = time.monotonic()
        running.thread.join(5)
        assert not running.thread.is_alive()
    assert time.monotonic() - started < WAKE_INTERVAL + 1.0
    assert all(w.termed for w in group.workers)


def test_worker_group_runs_consumers_in_parallel():
    def slow(message, **kwargs):
        time.sleep(0.5)
        message.reply_channel.send({"done": message["i"]})

    layer = make_layer([route("test.channel", slow)])
    reply = new_reply(layer)
    group = WorkerGroup(layer, n_threads=4, signal_handlers=False)
    assert len(group.workers) == 3
    got = []
    with Running(group):
        time.sleep(0.1)  # every thread blocked in its read
        started = time.monotonic()
        for i in range(4):
            layer.send("test.channel", {"reply_channel": reply, "i": i})
        assert wait_for(lambda: got.extend(replies(layer, reply)) or len(got) == 4, 5)
        elapsed = time.monotonic() - started
    assert sorted(m["done"] for m in got) == [0, 1, 2, 3]
    assert elapsed < 1.5, f"4 x 0.5 s consumers took {elapsed:.2f}s: not parallel"


class _CountingLayer(ChannelLayerWrapper):
    """Counts the reads the worker makes and what each returned."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reads: list[int] = []

    def receive_batch(self, channels, max_messages=100, block=False, timeout=None):
        got = self.channel_layer.receive_batch(channels, max_messages, block, timeout)
        if got:
            self.reads.append(len(got))
        return got


@pytest.mark.parametrize("prefetch, most_per_read", [(1, 1), (4, 4)])
def test_prefetch_takes_several_waiting_messages_per_read_in_order(prefetch, most_per_read):
    seen: list[int] = []

    def consumer(message, **kwargs):
        seen.append(message["n"])

    layer = _CountingLayer(InMemoryChannelLayer(blocking_timeout=0.05), "test", [route("pf.ch", consumer)])
    for n in range(10):
        layer.send("pf.ch", {"n": n})
    worker = Worker(layer, signal_handlers=False, prefetch=prefetch)
    run_until(worker, lambda: len(seen) == 10)
    assert seen == list(range(10))
    assert max(layer.reads) == most_per_read and sum(layer.reads) == 10


def test_messages_taken_in_one_read_are_all_handled_after_sigterm():
    seen: list[int] = []
    layer = make_layer([])
    worker = Worker(layer, signal_handlers=False, prefetch=4)

    def consumer(message, **kwargs):
        seen.append(message["n"])
        worker.termed = True  # as the SIGTERM handler does while a message is in hand

    layer.router.add_route(route("pfs.ch", consumer))
    for n in range(4):
        layer.send("pfs.ch", {"n": n})
    worker.run()
    assert seen == [0, 1, 2, 3]


class _HoldingLayer(InMemoryChannelLayer):
    """Holds messages in the process like the Redis layer's decoder after a lost multi-shard race."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.held: list[tuple[str, dict]] = []

    @property
    def decoder(self) -> bool:
        return bool(self.held)

    def receive_batch(self, channels, max_messages=100, block=False, timeout=None):
        if self.held and not block:
            out, self.held = self.held[:max_messages], self.held[max_messages:]
            return out
        return super().receive_batch(channels, max_messages, block, timeout)


def test_messages_the_layer_holds_in_the_process_are_handled_before_exiting():
    seen: list[int] = []
    layer = ChannelLayerWrapper(_HoldingLayer(blocking_timeout=0.05), "test", [])
    layer.router.add_route(route("held.ch", lambda message: seen.append(message["n"])))
    layer.channel_layer.held = [("held.ch", {"n": n}) for n in range(3)]
    worker = Worker(layer, signal_handlers=False)
    worker.termed = True  # SIGTERM before the first read: what the layer holds is still handled
    worker.run()
    assert seen == [0, 1, 2]
