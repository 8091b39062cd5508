"""What the interface server's log says when a WebSocket connect fails in the worker.

Real interface-server and `manage.py runworker` processes over Redis: the
server's log line is the first place someone looks when a socket is
refused, so it must say whether the application denied the connection, its
connect consumer crashed, or nothing answered at all.
"""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from tests.interface_server.ws_support import ws_connect
from tests.support.waiting import wait_for


def test_a_crashing_connect_consumer_is_reported_as_a_crash_not_a_deny(stack):
    server = stack.start_server()
    stack.start_worker()
    with pytest.raises(InvalidStatus) as info:
        ws_connect(stack.ws_url + "/special/crash/")
    assert info.value.response.status_code == 403
    # The client is told little; the details are for the operator.
    assert info.value.response.reason_phrase == "the application failed"
    assert wait_for(lambda: "/special/crash/ from" in server.output(), timeout=10, interval=0.05), server.output()
    line = next(line for line in server.output().splitlines() if "/special/crash/ from" in line)
    assert "WARNING" in line, line
    assert "rejected: the worker's websocket.connect consumer raised an exception" in line, line
    assert "the traceback is in the worker's log" in line, line
    assert "rejected by the application" not in server.output()
    # ... and the worker's log does have it.
    assert "RuntimeError: this consumer always fails" in stack.worker_output()


def test_an_unanswered_connect_says_where_to_look(stack):
    # No worker: nothing ever answers websocket.connect (as with a 1.x worker whose connect consumer raised).
    server = stack.start_server("--websocket-connect-timeout", "0.5")
    with pytest.raises(InvalidStatus) as info:
        ws_connect(stack.ws_url + "/ws/")
    assert info.value.response.status_code == 403
    assert info.value.response.reason_phrase == "not accepted within 0.5s"
    assert wait_for(lambda: "/ws/ from" in server.output(), timeout=10, interval=0.05), server.output()
    line = next(line for line in server.output().splitlines() if "/ws/ from" in line)
    assert "rejected: not accepted within 0.5s" in line, line
    assert "is a worker running" in line and "see the worker's log" in line, line
