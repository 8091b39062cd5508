"""The handshake: the ASGI 1.0 accept/reject/send/close matrix while it is pending, and its timeout."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import InvalidStatus

from .ws_support import (
    RawWebSocket,
    close_code,
    connect_in_background,
    disconnects_for,
    drain,
    open_ws,
    receive,
    wait_closed,
)


def _handshake(server, layer, reply):
    """Connect, answer the pending handshake with `reply`; returns (future, connect message)."""
    future = connect_in_background(server.ws_url + "/hs")
    message = receive(layer, "websocket.connect")
    layer.send(message["reply_channel"], reply)
    return future, message


@pytest.mark.parametrize(
    "reply",
    [
        {"accept": False},
        {"close": True},
        {"close": 4003},
        {"accept": False, "text": "x"},
        {"accept": False, "bytes": b"x", "close": True},
    ],
    ids=["accept-false", "close-true", "close-code", "accept-false-with-text", "accept-false-with-bytes-close"],
)
def test_pending_handshake_rejected_with_403(start_server, worker_layer, reply):
    server = start_server()
    future, message = _handshake(server, worker_layer, reply)
    with pytest.raises(InvalidStatus) as info:
        future.result(10)
    assert info.value.response.status_code == 403
    assert info.value.response.body in (b"", None)  # no data leaked into the rejection
    disconnects = disconnects_for(worker_layer, message["reply_channel"])
    assert len(disconnects) == 1  # connect was sent, so the app hears the end exactly once
    assert disconnects[0]["order"] == 1
    assert "rejected by the application" in server.output()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"accept": True}, []),
        ({"text": "hi"}, ["hi"]),
        ({"bytes": b"\x00"}, [b"\x00"]),
        ({"accept": True, "text": "welcome"}, ["welcome"]),
        ({"accept": True, "bytes": b"\x01\x02"}, [b"\x01\x02"]),
    ],
    ids=["accept", "text-accepts", "bytes-accepts", "accept-and-text", "accept-and-bytes"],
)
def test_pending_handshake_accepted(start_server, worker_layer, reply, expected):
    server = start_server()
    future, message = _handshake(server, worker_layer, reply)
    ws = future.result(10)
    received = [ws.recv(timeout=5) for _ in expected]
    assert received == expected
    # the socket is open and usable both ways
    ws.send("from client")
    got = receive(worker_layer, "websocket.receive")
    assert (got["reply_channel"], got["text"], got["order"]) == (message["reply_channel"], "from client", 1)
    worker_layer.send(message["reply_channel"], {"text": "from app"})
    assert ws.recv(timeout=5) == "from app"
    ws.close()
    disconnects = disconnects_for(worker_layer, message["reply_channel"])
    assert [(d["code"], d["order"]) for d in disconnects] == [(1000, 2)]


@pytest.mark.parametrize(
    ("reply", "expected", "code"),
    [
        ({"text": "bye", "close": True}, ["bye"], 1000),
        ({"close": 4001, "text": "x"}, ["x"], 4001),
        ({"bytes": b"\xff", "close": 3000}, [b"\xff"], 3000),
        ({"accept": True, "close": True}, [], 1000),
    ],
    ids=["text-close", "text-close-4001", "bytes-close-3000", "accept-close"],
)
def test_pending_handshake_accepted_sent_and_closed(start_server, worker_layer, reply, expected, code):
    server = start_server()
    future, message = _handshake(server, worker_layer, reply)
    ws = future.result(10)  # the handshake succeeds (101), then the data, then the close frame
    received, closed = wait_closed(ws)
    assert received == expected
    assert close_code(closed) == code
    assert len(disconnects_for(worker_layer, message["reply_channel"])) == 1


@pytest.mark.parametrize(
    "reply",
    [{"text": "a", "bytes": b"b"}, {"bogus": True}, {"text": b"not str"}, {"close": 1001}, {"close": "yes"}],
    ids=["text-and-bytes", "unknown-key", "text-is-bytes", "reserved-close-code", "close-not-int"],
)
def test_invalid_reply_to_a_pending_handshake_is_500(start_server, worker_layer, reply):
    server = start_server()
    future, message = _handshake(server, worker_layer, reply)
    with pytest.raises(InvalidStatus) as info:
        future.result(10)
    assert info.value.response.status_code == 500
    assert "Bad WebSocket reply" in server.output()
    assert len(disconnects_for(worker_layer, message["reply_channel"])) == 1
    # the server keeps serving
    ws, _ = open_ws(server, worker_layer)
    ws.close()


def test_empty_reply_leaves_the_handshake_pending(start_server, worker_layer):
    """A reply with nothing to do (no accept, data or close) changes nothing: a later accept still works."""
    server = start_server()
    future, message = _handshake(server, worker_layer, {"accept": None})
    time.sleep(0.3)
    assert not future.done()
    worker_layer.send(message["reply_channel"], {"accept": True})
    with future.result(10) as ws:
        worker_layer.send(message["reply_channel"], {"text": "ok"})
        assert ws.recv(timeout=5) == "ok"


def test_second_accept_and_late_reject_are_ignored(start_server, worker_layer):
    server = start_server()
    future, message = _handshake(server, worker_layer, {"accept": True})
    worker_layer.send(message["reply_channel"], {"accept": True})
    worker_layer.send(message["reply_channel"], {"accept": False})  # once open, accept is ignored
    worker_layer.send(message["reply_channel"], {"text": "still open"})
    with future.result(10) as ws:
        assert ws.recv(timeout=5) == "still open"


def test_connect_timeout_rejects_with_403(start_server, worker_layer):
    server = start_server("--websocket-connect-timeout", "1")
    started = time.monotonic()
    future = connect_in_background(server.ws_url + "/slow")
    message = receive(worker_layer, "websocket.connect")  # ... and never answer
    with pytest.raises(InvalidStatus) as info:
        future.result(15)
    elapsed = time.monotonic() - started
    assert info.value.response.status_code == 403
    assert 0.8 <= elapsed < 3.0, elapsed  # the 1 s timeout, not Autobahn's backstop or the default 20 s
    assert "not accepted within 1.0s" in server.output()
    disconnects = disconnects_for(worker_layer, message["reply_channel"])
    assert len(disconnects) == 1
    # a late accept for the timed-out socket is dropped harmlessly
    worker_layer.send(message["reply_channel"], {"accept": True})
    ws, _ = open_ws(server, worker_layer)
    ws.close()
    assert server.process.poll() is None


def test_client_leaving_during_the_handshake(start_server, worker_layer):
    """The client gives up while the handshake is pending: one disconnect, and a late accept is harmless."""
    server = start_server()
    raw = RawWebSocket(server.port, "/gone")
    message = receive(worker_layer, "websocket.connect")
    raw.close()
    disconnect = receive(worker_layer, "websocket.disconnect")
    assert disconnect["reply_channel"] == message["reply_channel"]
    assert disconnect["order"] == 1
    worker_layer.send(message["reply_channel"], {"accept": True, "text": "too late"})
    assert disconnects_for(worker_layer, message["reply_channel"]) == []
    ws, _ = open_ws(server, worker_layer)
    ws.close()
    assert server.process.poll() is None


def test_channel_full_on_connect_waits_then_503(start_server, worker_layer):
    """The handshake stays pending while websocket.connect is full; past --send-timeout it is refused with 503."""
    server = start_server("--send-timeout", "1.5", layer_options={"capacity": 1})
    first = connect_in_background(server.ws_url + "/one")
    time.sleep(0.3)  # websocket.connect now holds one message: it is full
    second = connect_in_background(server.ws_url + "/two")
    with pytest.raises(InvalidStatus) as info:
        second.result(10)
    assert info.value.response.status_code == 503
    assert "waited longer than send_timeout" in server.output()
    message = receive(worker_layer, "websocket.connect")
    assert message["path"] == "/one"
    worker_layer.send(message["reply_channel"], {"accept": True})
    first.result(10).close()
    # no disconnect for the refused one: its connect was never sent
    assert [d["path"] for d in drain(worker_layer, "websocket.disconnect")] == ["/one"]


def test_channel_full_on_connect_waits_for_room(start_server, worker_layer):
    server = start_server(layer_options={"capacity": 1})
    futures = [connect_in_background(server.ws_url + f"/n{i}") for i in range(3)]
    paths = []
    for _ in range(3):
        time.sleep(0.3)
        message = receive(worker_layer, "websocket.connect")
        paths.append(message["path"])
        worker_layer.send(message["reply_channel"], {"accept": True})
    assert sorted(paths) == ["/n0", "/n1", "/n2"]
    for future in futures:
        future.result(10).close()
