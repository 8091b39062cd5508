"""SIGTERM with 500 WebSockets open: 500 close frames 1001, 500 `websocket.disconnect` (1001, one each), exit 0."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.ws_cycles import HeldSockets

from .ws_support import Worker, drain

SOCKETS = 500
GRACE = 10.0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigterm_with_500_websockets_closes_each_with_1001_and_sends_each_disconnect(start_server, worker_layer):
    server = start_server("--shutdown-grace", str(GRACE), layer_options={"capacity": 2000})
    with Worker(worker_layer, echo=False) as worker:
        held = HeldSockets("127.0.0.1", server.port, "/held", SOCKETS)
        assert len(worker.connects) == SOCKETS
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        codes = held.close_codes(timeout=GRACE)
        assert server.process.wait(GRACE + 5) == 0
        exited_in = time.monotonic() - started
        deadline = time.monotonic() + 5
        while len(worker.disconnects) < SOCKETS and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a duplicate would arrive now
    print(f"SIGTERM with {SOCKETS} WebSockets: exited in {exited_in:.2f}s, {len(worker.disconnects)} disconnects")
    assert codes == [1001] * SOCKETS, {code: codes.count(code) for code in set(codes)}
    assert exited_in < GRACE
    assert sorted(m["reply_channel"] for m in worker.disconnects) == sorted(m["reply_channel"] for m in worker.connects)
    assert {m["code"] for m in worker.disconnects} == {1001}
    assert drain(worker_layer, "websocket.disconnect", settle=0) == []
    assert f"Shutting down: {SOCKETS} connections open" in server.output()
