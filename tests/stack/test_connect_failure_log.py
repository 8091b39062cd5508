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


def _refused(stack, server, path: str) -> tuple[str, str]:
    """Connect to `path`, expect a 403; return its reason phrase and the server's log line about it."""
    with pytest.raises(InvalidStatus) as info:
        ws_connect(stack.ws_url + path)
    assert info.value.response.status_code == 403
    assert wait_for(lambda: f"{path} from" in server.output(), timeout=10, interval=0.05), server.output()
    line = next(line for line in server.output().splitlines() if f"{path} from" in line)
    return info.value.response.reason_phrase, line


def test_a_crashing_connect_consumer_is_reported_as_a_crash_not_a_deny(stack):
    server = stack.start_server()
    stack.start_worker()
    reason, line = _refused(stack, server, "/special/crash/")
    # The client is told little; the details are for the operator.
    assert reason == "the application failed"
    assert "WARNING" in line, line
    assert "rejected: the worker's websocket.connect consumer raised an exception" in line, line
    assert "the traceback is in the worker's log" in line, line
    assert "rejected by the application" not in server.output()
    # ... and the worker's log does have it.
    assert "RuntimeError: this consumer always fails" in stack.worker_output()


def test_an_unanswered_connect_says_where_to_look(stack):
    # No worker: nothing ever answers websocket.connect (as with a 1.x worker whose connect consumer raised).
    server = stack.start_server("--websocket-connect-timeout", "0.5")
    reason, line = _refused(stack, server, "/ws/")
    assert reason == "not accepted within 0.5s"
    assert "rejected: not accepted within 0.5s" in line, line
    assert "is a worker running" in line and "see the worker's log" in line, line
