"""The layer sender's queues (`interface_server.sender`): order, independence, batching, timeouts, disconnects.

`SendQueues` is driven directly on a fake clock against the in-memory layer
(or a layer that fails on demand); `Sender`'s reactor side on Twisted's
`Clock`, with the thread's results handed back by hand; one test runs the
real thread.
"""

from __future__ import annotations

import threading
import time

import pytest
from twisted.internet.task import Clock

from channels_core.layers import InMemoryChannelLayer
from channels_core.layers.errors import LayerConnectionError
from interface_server.sender import (
    CONNECT,
    DISCONNECT,
    MAX_WAITING,
    MESSAGE,
    RESUME_AT,
    UNAVAILABLE_AFTER,
    Item,
    LayerUnavailable,
    Sender,
    SendQueues,
    SendTimeout,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class RecordingLayer(InMemoryChannelLayer):
    """The in-memory layer, recording each call, and failing while `down` is set."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.calls: list[tuple[str, str, int]] = []
        self.down = False

    def send(self, channel, message):
        if self.down:
            raise LayerConnectionError("down")
        self.calls.append(("send", channel, 1))
        super().send(channel, message)

    def send_many(self, channel, messages):
        if self.down:
            raise LayerConnectionError("down")
        self.calls.append(("send_many", channel, len(messages)))
        super().send_many(channel, messages)


def make(capacity: int = 100, send_timeout: float = 30.0, **layer_options):
    layer = RecordingLayer(capacity=capacity, **layer_options)
    clock = FakeClock()
    disconnects: list[tuple[str, str, dict]] = []

    def disconnect_op(rc, channel, message):
        layer.send(channel, message)
        disconnects.append((rc, channel, message))

    queues = SendQueues(layer, disconnect_op, send_timeout=send_timeout, disconnect_timeout=600, clock=clock)
    return layer, clock, queues, disconnects


def drain_channel(layer, channel: str) -> list[dict]:
    out = []
    while True:
        got, message = layer.receive([channel])
        if got is None:
            return out
        out.append(message)


def msg(channel: str, n: int, rc: str | None = None, kind: str = MESSAGE) -> Item:
    return Item(kind, channel, {"n": n}, reply_channel=rc)


def test_consecutive_messages_for_one_channel_leave_as_one_send_many_in_order():
    layer, _, queues, _ = make()
    queues.add([msg("a", n) for n in range(5)] + [msg("b", 0)] + [msg("a", n) for n in range(5, 7)])
    done = queues.step()
    assert len(done) == 8 and all(item.error is None for item in done)
    assert [m["n"] for m in drain_channel(layer, "a")] == list(range(7))
    assert ("send_many", "a", 7) in layer.calls and ("send", "b", 1) in layer.calls


def test_a_full_channel_waits_while_other_channels_go_on():
    layer, clock, queues, _ = make(capacity=2)
    queues.add([msg("full", n) for n in range(5)] + [msg("free", n) for n in range(3)])
    done = queues.step()
    assert sorted((i.channel, i.message["n"]) for i in done) == [("free", 0), ("free", 1), ("full", 0), ("full", 1)]
    assert all(item.error is None for item in done)  # nothing failed: the rest waits
    assert queues.pending() == 4
    assert queues.blocked_for("full", clock.now + 1) == pytest.approx(1)
    # Room again: the waiting ones go, in their order, after the short full-channel backoff.
    drain_channel(layer, "full")
    drain_channel(layer, "free")
    clock.now += 0.06
    for _ in range(3):
        for item in queues.step():
            assert item.error is None
        clock.now += 0.06
        assert len(drain_channel(layer, "free")) <= 1
        drained = drain_channel(layer, "full")
        if drained:
            break
    assert [m["n"] for m in drained] == [2, 3]
    clock.now += 0.06
    queues.step()
    assert [m["n"] for m in drain_channel(layer, "full")] == [4]
    assert queues.blocked_for("full") == 0


def test_full_channel_retries_back_off_between_5_and_50_ms():
    layer, clock, queues, _ = make(capacity=1)
    queues.add([msg("c", 0), msg("c", 1)])
    queues.step()
    delays = []
    for _ in range(8):
        wait = queues.wait_time()
        delays.append(round(wait, 3))
        clock.now += wait
        queues.step()
    assert delays[0] == pytest.approx(0.005, abs=0.002)
    assert max(delays) <= 0.1  # the expiry check (every 100 ms) or the 50 ms backoff cap
    assert any(d == pytest.approx(0.05, abs=0.002) for d in delays)


def test_a_message_past_send_timeout_is_given_up_with_send_timeout():
    layer, clock, queues, _ = make(capacity=1, send_timeout=1.0)
    queues.add([msg("c", 0, "rc!1"), msg("c", 1, "rc!1")])
    assert [i.message["n"] for i in queues.step()] == [0]
    clock.now += 0.5
    assert queues.step() == []
    clock.now += 0.6
    done = queues.step()
    assert [(i.message["n"], type(i.error)) for i in done] == [(1, SendTimeout)]
    assert queues.pending() == 0 and queues.waiting == {}


def test_an_unreachable_layer_makes_everything_wait_then_it_all_goes():
    layer, clock, queues, _ = make()
    layer.down = True
    queues.add([msg("a", 0), msg("b", 0)])
    assert queues.step() == []
    assert queues.stalled_for(clock.now + 3) == pytest.approx(3)
    layer.down = False
    clock.now += 1.5
    done = queues.step()
    assert sorted(i.channel for i in done) == ["a", "b"]
    assert queues.stalled_for() == 0


def test_a_message_the_layer_refuses_fails_alone():
    layer, _, queues, _ = make()
    too_big = Item(MESSAGE, "c", {"blob": b"x" * (2 * 1024 * 1024)})
    queues.add([msg("c", 0), too_big, msg("c", 2)])
    done = queues.step()
    assert [type(i.error).__name__ if i.error else None for i in done] == [None, "MessageTooLarge", None]
    assert [m["n"] for m in drain_channel(layer, "c")] == [0, 2]


def test_a_disconnect_waits_for_its_connections_earlier_messages_and_is_retried_until_sent():
    layer, clock, queues, disconnects = make(capacity=1)
    layer.send("websocket.disconnect", {"other": True})  # the disconnect channel is full too
    queues.add([msg("websocket.receive", n, "rc!1") for n in range(3)])
    queues.add([Item(DISCONNECT, "websocket.disconnect", {"end": 1}, reply_channel="rc!1")])
    queues.step()
    assert disconnects == []
    for _ in range(40):  # 2 s: a worker takes one message of each channel every 50 ms
        clock.now += 0.05
        drain_channel(layer, "websocket.receive")
        if len(layer.calls) > 3:
            drain_channel(layer, "websocket.disconnect")
        queues.step()
    assert [rc for rc, _, _ in disconnects] == ["rc!1"]
    # It went only after all three frames.
    sends = [c for c in layer.calls if c[0] == "send"]
    assert sends[-1][1] == "websocket.disconnect"
    assert queues.pending() == 0


def test_a_disconnect_outlives_send_timeout_and_an_outage():
    layer, clock, queues, disconnects = make(send_timeout=1.0)
    layer.down = True
    queues.add([Item(DISCONNECT, "websocket.disconnect", {"end": 1}, reply_channel="rc!1")])
    for _ in range(60):  # a minute of outage
        clock.now += 1
        assert queues.step() == []
    layer.down = False
    clock.now += 1
    assert [i.error for i in queues.step()] == [None]
    assert len(disconnects) == 1


def test_a_disconnect_is_given_up_after_its_long_bound_and_logged(caplog):
    layer, clock, queues, disconnects = make()
    layer.down = True
    queues.add([Item(DISCONNECT, "websocket.disconnect", {"end": 1}, reply_channel="rc!1")])
    clock.now += 601
    done = queues.step()
    assert [type(i.error).__name__ for i in done] == ["DisconnectLost"]
    assert "Gave up 1 disconnect" in caplog.text


def test_no_disconnect_for_a_connection_whose_connect_was_never_sent():
    layer, clock, queues, disconnects = make(capacity=1, send_timeout=1.0)
    layer.send("websocket.connect", {"someone": "else"})
    queues.add([msg("websocket.connect", 0, "rc!1", kind=CONNECT)])
    queues.step()
    clock.now += 1.5
    assert [type(i.error) for i in queues.step()] == [SendTimeout]
    queues.add([Item(DISCONNECT, "websocket.disconnect", {"end": 1}, reply_channel="rc!1")])
    assert [i.error for i in queues.step()] == [None]
    assert disconnects == []


def test_calls_run_in_order_and_report_results_and_errors():
    _, _, queues, _ = make()
    log = []

    def boom():
        raise ValueError("no")

    queues.add([Item("call", "", lambda: log.append(1) or "one"), Item("call", "", boom)])
    done = queues.step()
    assert log == [1]
    assert done[0].result == "one" and isinstance(done[1].error, ValueError)


# -- the reactor side ------------------------------------------------------------------------


class Owner:
    def __init__(self, rc: str) -> None:
        self.reply_channel = rc
        self.paused = 0
        self.resumed = 0

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        self.resumed += 1


class ManualSender(Sender):
    """The reactor side with the thread replaced by the test: `round()` runs one step of the queues."""

    def __init__(self, layer, send_timeout=30.0):
        self.clock = Clock()
        self.clock.callFromThread = lambda f, *a: f(*a)
        super().__init__(layer, send_timeout, lambda rc, ch, m: layer.send(ch, m), {}, self.clock)
        self.inbox: list[Item] = []
        self.thread.hand_over = self.inbox.extend
        self.thread.is_alive = lambda: True

    def round(self) -> None:
        """What the thread does: add the turn's items, one step, report what the reactor must hear of."""
        self.clock.advance(0)  # the end of the turn: hand over
        self.queues.add(self.inbox)
        self.inbox.clear()
        self._done([item for item in self.queues.step() if item.needs_reactor()])


def test_a_connection_with_a_backlog_is_paused_and_resumed_as_it_drains():
    layer = RecordingLayer(capacity=1)
    sender = ManualSender(layer)
    owner = Owner("rc!1")
    for n in range(MAX_WAITING + 2):
        sender.put("websocket.receive", {"n": n}, owner=owner)
    assert owner.paused == 1 and sender.counters["paused"] == 1
    sender.round()
    assert sender.waiting(owner) == MAX_WAITING + 1
    received = []
    while sender.waiting(owner) > RESUME_AT:
        assert owner.resumed == 0
        received += drain_channel(layer, "websocket.receive")
        sender.queues.queues["websocket.receive"].retry_at = 0
        sender.round()
    assert owner.resumed == 1
    while sender.waiting(owner):
        received += drain_channel(layer, "websocket.receive")
        sender.queues.queues["websocket.receive"].retry_at = 0
        sender.round()
    received += drain_channel(layer, "websocket.receive")
    assert [m["n"] for m in received] == list(range(MAX_WAITING + 2))


def test_a_turns_messages_leave_together_and_their_callbacks_run_in_order():
    layer = RecordingLayer()
    sender = ManualSender(layer)
    sent = []
    for n in range(50):
        sender.put("c", {"n": n}, on_sent=lambda n=n: sent.append(n))
    sender.round()
    assert sent == list(range(50))
    assert layer.calls == [("send_many", "c", 50)]


def test_http_requests_get_layer_unavailable_once_the_layer_has_failed_for_2_s():
    layer = RecordingLayer()
    sender = ManualSender(layer)
    sender.start = lambda: None
    errors = []
    layer.down = True
    sender.put("http.request", {"n": 0}, on_error=errors.append, fail_fast=True)
    sender.put("websocket.receive", {"n": 0}, on_error=errors.append)
    sender.round()
    assert not sender.unavailable()
    sender.queues.down_since -= UNAVAILABLE_AFTER
    assert sender.unavailable()
    sender._check_available()
    assert [type(e) for e in errors] == [LayerUnavailable]  # the WebSocket frame keeps waiting
    assert sender.counters["unavailable_503"] == 1
    # The thread skips the answered request when the layer comes back.
    layer.down = False
    sender.queues.down_until = 0
    sender.round()
    assert drain_channel(layer, "http.request") == []
    assert drain_channel(layer, "websocket.receive") == [{"n": 0}]
    assert sender.drained()


def test_the_real_thread_sends_in_order_and_reports_back():
    layer = RecordingLayer(capacity=5)
    deliveries: list[int] = []
    lock = threading.Lock()

    class ThreadReactor:
        def callLater(self, delay, f, *a):
            f(*a)

        def callFromThread(self, f, *a):
            with lock:
                deliveries.append(len(a[0]))
                f(*a)

    sender = Sender(layer, 30.0, lambda rc, ch, m: layer.send(ch, m), {}, ThreadReactor())
    sender.thread.start()
    try:
        sent = []
        for n in range(20):
            sender.put("c", {"n": n}, on_sent=lambda n=n: sent.append(n))
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 20 and time.monotonic() < deadline:
            got += [m["n"] for m in drain_channel(layer, "c")]
            time.sleep(0.01)
        assert got == list(range(20))
        while len(sent) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sent == list(range(20))
        assert sum(deliveries) == 20 and len(deliveries) <= 20
    finally:
        sender.thread.stop()
        sender.thread.join(2)


def test_connections_take_turns_so_a_flood_does_not_stand_in_front_of_others():
    layer, _, queues, _ = make(capacity=1000)
    queues.add([msg("websocket.receive", n, "rc!flood") for n in range(500)])
    queues.add([msg("websocket.receive", 1000, "rc!quiet")])
    queues.max_batch = 50
    first = queues._take(queues.queues["websocket.receive"], [])
    assert len(first) == 50
    assert [i.message["n"] for i in first if i.reply_channel == "rc!quiet"] == [1000]
    # The flood's own order is kept.
    flood = [i.message["n"] for i in first if i.reply_channel == "rc!flood"]
    assert flood == list(range(49))


def test_one_connection_sends_at_most_its_share_per_tick_and_less_while_the_channel_is_congested():
    from interface_server.sender import CONGESTED_TICK, PER_LANE, TICK_SHARE

    layer, clock, queues, _ = make(capacity=1000)
    queues.add([msg("websocket.receive", n, "rc!flood") for n in range(100)])
    queues.add([msg("websocket.receive", n, None) for n in range(100, 150)])  # no connection: not limited
    first = queues.step()
    assert len([i for i in first if i.reply_channel == "rc!flood"]) == TICK_SHARE
    assert len([i for i in first if i.reply_channel is None]) == 50
    assert queues.wait_time() == pytest.approx(CONGESTED_TICK, abs=0.001)
    clock.now += CONGESTED_TICK
    assert len(queues.step()) == TICK_SHARE
    # Congested (it was full a moment ago): PER_LANE per tick.
    queues.queues["websocket.receive"].congested_until = clock.now + 1
    clock.now += CONGESTED_TICK
    assert len(queues.step()) == PER_LANE
    got = [m["n"] for m in drain_channel(layer, "websocket.receive") if m["n"] < 100]
    assert got == list(range(2 * TICK_SHARE + PER_LANE))
