"""SIGTERM with WebSockets open or pending: the app hears `websocket.disconnect` (1001) first, clients get 1001."""

from __future__ import annotations

import signal
import time

import pytest
from websockets.exceptions import InvalidStatus

from .ws_support import (
    RawWebSocket,
    close_code,
    connect_in_background,
    drain,
    open_ws,
    receive,
    wait_closed,
)


def test_sigterm_closes_open_websockets_with_1001(start_server, worker_layer):
    server = start_server()
    sockets = []
    for i in range(3):
        ws, message = open_ws(server, worker_layer, f"/s/{i}")
        sockets.append((ws, message["reply_channel"]))
    sockets[0][0].send("one message")
    assert receive(worker_layer, "websocket.receive")["order"] == 1

    server.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    codes = []
    seen_by_first_close = None
    disconnects = []
    for ws, _ in sockets:
        _, closed = wait_closed(ws, timeout=5)
        codes.append(close_code(closed))
        disconnects += drain(worker_layer, "websocket.disconnect", settle=0)
        if seen_by_first_close is None:
            seen_by_first_close = {d["reply_channel"] for d in disconnects}
    assert codes == [1001, 1001, 1001]
    # the app was told before the client got its close frame
    assert sockets[0][1] in seen_by_first_close
    assert sorted(d["reply_channel"] for d in disconnects) == sorted(reply for _, reply in sockets)
    assert all(d["code"] == 1001 for d in disconnects)
    by_channel = {d["reply_channel"]: d for d in disconnects}
    assert by_channel[sockets[0][1]]["order"] == 2
    assert by_channel[sockets[1][1]]["order"] == 1

    assert server.process.wait(5) == 0
    assert time.monotonic() - started < 4
    assert drain(worker_layer, "websocket.disconnect", settle=0.3) == []  # exactly once each
    assert "Shutting down: 3 connections open" in server.output()


def test_sigterm_rejects_a_pending_handshake(start_server, worker_layer):
    server = start_server()
    future = connect_in_background(server.ws_url + "/pending")
    message = receive(worker_layer, "websocket.connect")  # never answered
    server.process.send_signal(signal.SIGTERM)
    with pytest.raises(InvalidStatus) as info:
        future.result(10)
    assert info.value.response.status_code == 503
    assert server.process.wait(5) == 0
    disconnects = drain(worker_layer, "websocket.disconnect", settle=0.3)
    assert [(d["reply_channel"], d["code"], d["order"]) for d in disconnects] == [(message["reply_channel"], 1001, 1)]
    # a late accept finds no server, and nothing else is sent
    worker_layer.send(message["reply_channel"], {"accept": True})


def test_sigterm_does_not_wait_for_a_client_that_ignores_the_close(start_server, worker_layer):
    server = start_server()
    raw = RawWebSocket(server.port, "/deaf")
    message = receive(worker_layer, "websocket.connect")
    worker_layer.send(message["reply_channel"], {"accept": True})
    raw.expect_upgrade()
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    opcode, payload = raw.read_frame()
    assert (opcode, payload[:2]) == (0x8, b"\x03\xe9")  # close, 1001; never answered
    assert server.process.wait(6) == 0
    assert time.monotonic() - started < 4  # the closing-handshake timeout, not the 30 s grace
    disconnects = drain(worker_layer, "websocket.disconnect", settle=0.3)
    assert [(d["reply_channel"], d["code"]) for d in disconnects] == [(message["reply_channel"], 1001)]
    raw.close()


def test_sigterm_with_no_connections_exits_at_once(start_server):
    server = start_server()
    started = time.monotonic()
    assert server.terminate(timeout=5) == 0
    assert time.monotonic() - started < 2
