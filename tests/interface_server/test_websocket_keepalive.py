"""Keepalive pings: idle sockets that answer stay open, sockets that do not are dropped."""

from __future__ import annotations

import time

from .ws_support import RawWebSocket, disconnects_for, open_ws, receive

PING_ARGS = ("--ping-interval", "0.5", "--ping-timeout", "1")


def _accepted_raw(server, layer, path="/raw"):
    raw = RawWebSocket(server.port, path)
    message = receive(layer, "websocket.connect")
    layer.send(message["reply_channel"], {"accept": True})
    raw.expect_upgrade()
    return raw, message


def test_idle_socket_that_answers_pings_stays_open(start_server, worker_layer):
    server = start_server(*PING_ARGS)
    ws, message = open_ws(server, worker_layer)  # `websockets` answers pings by itself
    with ws:
        time.sleep(3)
        worker_layer.send(message["reply_channel"], {"text": "still there?"})
        assert ws.recv(timeout=5) == "still there?"
        ws.send("yes")
        assert receive(worker_layer, "websocket.receive")["text"] == "yes"
    assert "ping timeout" not in server.output().lower()


def test_server_pings_and_a_raw_client_that_pongs_stays_open(start_server, worker_layer):
    server = start_server(*PING_ARGS)
    raw, message = _accepted_raw(server, worker_layer)
    opened = time.monotonic()
    pings = 0
    raw.sock.settimeout(2)
    while time.monotonic() - opened < 3:
        opcode, payload = raw.read_frame()
        assert opcode == 0x9, (opcode, payload)  # a ping, nothing else
        pings += 1
        raw.send_frame(0xA, payload)  # the matching pong
    assert 3 <= pings <= 12, pings  # every 0.5 s: about 6, not a ping storm
    worker_layer.send(message["reply_channel"], {"text": "alive"})
    while True:
        opcode, payload = raw.read_frame()
        if opcode != 0x9:
            break
        raw.send_frame(0xA, payload)
    assert (opcode, payload) == (0x1, b"alive")
    assert disconnects_for(worker_layer, message["reply_channel"], settle=0) == []
    raw.close()


def test_client_that_never_answers_pings_is_dropped(start_server, worker_layer):
    server = start_server(*PING_ARGS)
    raw, message = _accepted_raw(server, worker_layer)
    opened = time.monotonic()
    raw.sock.settimeout(3)
    opcode, _ = raw.read_frame()
    assert opcode == 0x9  # pinged after the interval ...
    assert 0.3 <= time.monotonic() - opened < 1.5
    # ... and never answered: dropped after the ping timeout (0.5 + 1 s)
    closed_at = raw.wait_eof(timeout=6)
    assert 1.2 <= closed_at - opened <= 3.0, closed_at - opened
    disconnect = receive(worker_layer, "websocket.disconnect", timeout=3)
    assert disconnect["reply_channel"] == message["reply_channel"]
    assert disconnect["code"] == 1006
    assert disconnect["order"] == 1
    assert disconnects_for(worker_layer, message["reply_channel"]) == []
    assert server.process.poll() is None
