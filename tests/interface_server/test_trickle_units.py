"""The trickle-timeout bookkeeping (`interface_server.trickle`) on a fake clock: deadlines, body pace, phases."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
from twisted.internet.task import Clock

from interface_server import output_limit
from interface_server.config import ServerConfig
from interface_server.trickle import BODY, CLOSING, HEADER, KEEPALIVE, BodyPace, ConnectionTimeouts, Deadline


def test_a_deadline_fires_once_when_due():
    clock, fired = Clock(), []
    deadline = Deadline(clock, lambda: fired.append(clock.seconds()))
    deadline.arm(2)
    clock.advance(1.9)
    assert fired == []
    clock.advance(0.2)
    assert fired == [pytest.approx(2.1)]
    clock.advance(10)
    assert len(fired) == 1


def test_moving_a_deadline_later_keeps_one_call_that_re_arms_itself():
    clock, fired = Clock(), []
    deadline = Deadline(clock, lambda: fired.append(clock.seconds()))
    deadline.arm(1)
    for _ in range(100):  # a later deadline each time: no new call, no reset
        clock.advance(0.5)
        deadline.arm(1)
    assert len(clock.getDelayedCalls()) == 1
    assert fired == []
    clock.advance(1)
    assert fired == [pytest.approx(51)]


def test_moving_a_deadline_sooner_resets_the_call():
    clock, fired = Clock(), []
    deadline = Deadline(clock, lambda: fired.append(clock.seconds()))
    deadline.arm(10)
    deadline.arm(1)
    clock.advance(1)
    assert fired == [1]
    assert clock.getDelayedCalls() == []


def test_a_disarmed_deadline_does_nothing_and_cancel_leaves_no_call():
    clock, fired = Clock(), []
    deadline = Deadline(clock, lambda: fired.append(1))
    deadline.arm(1)
    deadline.disarm()
    clock.advance(2)
    assert fired == []
    deadline.arm(1)
    deadline.cancel()
    assert clock.getDelayedCalls() == []


def test_body_pace_gap():
    pace = BodyPace(timeout=30, min_rate=0, now=0)
    pace.data(10, 100)
    assert pace.next_check() == 40
    assert pace.too_slow(39.9) is None
    assert "no body bytes for 30.0s" in pace.too_slow(40)


def test_body_pace_rate_is_checked_only_after_the_first_timeout():
    pace = BodyPace(timeout=30, min_rate=1024, now=0)
    for second in range(1, 30):  # 1 byte/s: never a gap
        pace.data(second, 1)
        assert pace.too_slow(second) is None
    assert pace.next_check() == 30
    assert "averaging 1 B/s" in pace.too_slow(30)


def test_body_pace_fast_enough_is_checked_again_when_it_could_fall_below():
    pace = BodyPace(timeout=30, min_rate=1000, now=0)
    pace.data(29, 50_000)  # 50 s worth at the minimum rate
    assert pace.too_slow(30) is None
    assert pace.next_check() == 50  # the gap deadline (59) comes later
    assert pace.too_slow(49.9) is None
    assert pace.too_slow(50) is not None


def test_body_pace_restart_forgets_a_pause():
    pace = BodyPace(timeout=5, min_rate=1000, now=0)
    pace.restart(100)
    assert pace.next_check() == 105
    assert pace.too_slow(104) is None


def _timeouts(**config):
    clock, cuts = Clock(), []
    reading = SimpleNamespace(value=True)
    timeouts = ConnectionTimeouts(
        ServerConfig(**config), clock, lambda phase, why: cuts.append((phase, clock.seconds())), lambda: reading.value
    )
    return clock, cuts, timeouts, reading


def test_a_fresh_connection_that_sends_nothing_gets_the_header_timeout():
    clock, cuts, _, _ = _timeouts(request_header_timeout=10, keepalive_timeout=5)
    clock.advance(10)
    assert cuts == [(KEEPALIVE, 10)]


def test_the_header_deadline_counts_from_the_first_byte_and_is_not_extended_by_more_bytes():
    clock, cuts, timeouts, _ = _timeouts(request_header_timeout=10)
    clock.advance(3)
    timeouts.data()
    for _ in range(9):
        clock.advance(1)
        timeouts.data()
    assert cuts == []
    clock.advance(1)
    assert cuts == [(HEADER, 13)]


def test_body_then_the_application_then_keep_alive():
    clock, cuts, timeouts, _ = _timeouts(request_body_timeout=5, request_body_min_rate=0, keepalive_timeout=2)
    timeouts.data()
    timeouts.request_head()
    clock.advance(4)
    timeouts.body_bytes(10)
    clock.advance(4)
    timeouts.request_complete()
    clock.advance(100)  # the application takes its time: no client deadline
    assert cuts == []
    timeouts.waiting(next_request_started=False)
    clock.advance(2)
    assert cuts == [(KEEPALIVE, 110)]


def test_a_slow_body_is_cut_and_a_paused_socket_is_not_held_against_it():
    clock, cuts, timeouts, reading = _timeouts(request_body_timeout=5, request_body_min_rate=100)
    timeouts.data()
    timeouts.request_head()
    reading.value = False  # the server paused the socket (the body channel is full)
    clock.advance(20)
    assert cuts == []
    reading.value = True
    clock.advance(4)
    timeouts.body_bytes(600)  # 600 bytes by t=24: fast enough until t=26
    clock.advance(1.9)
    assert cuts == []
    clock.advance(0.2)
    assert cuts == [(BODY, pytest.approx(26.1))]


def test_a_pipelined_request_already_started_gets_the_header_timeout_and_closing_is_bounded():
    clock, cuts, timeouts, _ = _timeouts(request_header_timeout=3, keepalive_timeout=7)
    timeouts.waiting(next_request_started=True)
    clock.advance(3)
    assert cuts == [(HEADER, 3)]
    timeouts.closing()
    clock.advance(7)
    assert cuts[-1] == (CLOSING, 10)
    timeouts.stop()
    assert clock.getDelayedCalls() == []


def test_a_response_still_being_taken_is_not_idleness():
    clock, cuts = Clock(), []
    queued = SimpleNamespace(held=0, pending=0)
    timeouts = ConnectionTimeouts(
        ServerConfig(keepalive_timeout=2),
        clock,
        lambda phase, why: cuts.append((phase, clock.seconds())),
        lambda: True,
        lambda: (queued.held, queued.pending),
    )
    timeouts.waiting(next_request_started=False)
    queued.held, queued.pending = 1000, 5000
    for pending in (4000, 3000, 2000):  # the client takes some every period
        clock.advance(2)
        queued.pending = pending
    clock.advance(2)  # t=8: the last 1000 taken
    assert cuts == []
    clock.advance(2)  # none taken for a whole period: cut
    assert cuts == [(KEEPALIVE, 10)]


def test_an_idle_connection_with_only_the_kernel_queue_left_is_closed_on_time():
    clock, cuts = Clock(), []
    timeouts = ConnectionTimeouts(
        ServerConfig(keepalive_timeout=2),
        clock,
        lambda phase, why: cuts.append((phase, clock.seconds())),
        lambda: True,
        lambda: (0, 5000),  # nothing held by the process: closing lets the kernel finish
    )
    timeouts.waiting(next_request_started=False)
    clock.advance(2)
    assert cuts == [(KEEPALIVE, 2)]


def test_unsent_bytes_reads_the_kernel_send_queue():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server_side, _ = listener.accept()
        transport = SimpleNamespace(getHandle=lambda: server_side)
        try:
            assert output_limit.unsent_bytes(transport) == 0
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            server_side.setblocking(False)
            sent = 0
            try:
                while True:
                    sent += server_side.send(b"x" * 65536)
            except BlockingIOError:
                pass
            assert 0 < output_limit.unsent_bytes(transport) <= sent
        finally:
            client.close()
            server_side.close()
    assert output_limit.unsent_bytes(SimpleNamespace()) == 0


def test_a_head_on_a_socket_the_server_paused_is_not_cut():
    clock, cuts, timeouts, reading = _timeouts(request_header_timeout=3)
    timeouts.data()
    reading.value = False
    clock.advance(10)  # the deadline passes while paused: a fresh one from then
    assert cuts == []
    reading.value = True
    clock.advance(3)
    assert cuts == [(HEADER, 13)]
