"""WebSocket messages through the real server: connect/receive/disconnect keys, order, limits, load.

Each test runs an `interface-server` subprocess on Redis and plays the worker
itself; clients are real `websockets` clients (or a raw socket where a real
client would be too polite).
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.exceptions import ConnectionClosed

from .ws_support import (
    RawWebSocket,
    Worker,
    close_code,
    connect_in_background,
    disconnects_for,
    drain,
    open_ws,
    receive,
    wait_closed,
    ws_connect,
)

# -- websocket.connect ------------------------------------------------------------------------


def test_connect_message_keys(start_server, worker_layer):
    server = start_server()
    headers = [("X-Custom", "first"), ("X-Custom", "second"), ("X_Forwarded_Spoof", "evil"), ("X-MiXeD", "Val")]
    ws, message = open_ws(
        server, worker_layer, "/chat%20room/caf%C3%A9?x=1&y=%20z&q=caf%C3%A9", additional_headers=headers
    )
    with ws:
        assert set(message) >= {
            "reply_channel",
            "path",
            "query_string",
            "headers",
            "client",
            "server",
            "scheme",
            "root_path",
            "order",
        }
        assert message["reply_channel"].startswith(server.reply_prefix())
        assert message["path"] == "/chat room/café"
        assert message["query_string"] == b"x=1&y=%20z&q=caf%C3%A9"
        assert message["order"] == 0
        assert message["scheme"] == "ws"
        assert message["root_path"] == ""
        names = [name for name, _ in message["headers"]]
        assert all(isinstance(name, bytes) and isinstance(value, bytes) for name, value in message["headers"])
        assert all(name == name.lower() for name in names)
        assert [list(h) for h in message["headers"] if h[0] == b"x-custom"] == [
            [b"x-custom", b"first"],
            [b"x-custom", b"second"],
        ]
        assert [b"x-mixed", b"Val"] in [list(h) for h in message["headers"]]
        assert not any(b"_" in name for name in names), names
        assert b"x-forwarded-spoof" not in names
        for required in (b"host", b"upgrade", b"sec-websocket-key", b"sec-websocket-version"):
            assert required in names
        local_host, local_port = ws.local_address[:2]
        assert list(message["client"]) == [local_host, local_port]
        assert list(message["server"]) == ["127.0.0.1", server.port]


def test_connect_root_path(start_server, worker_layer):
    server = start_server("--root-path", "/forum/")
    ws, message = open_ws(server, worker_layer, "/forum/ws")
    with ws:
        assert message["root_path"] == "/forum"
        assert message["path"] == "/forum/ws"


# -- websocket.receive / websocket.disconnect --------------------------------------------------


def test_receive_and_disconnect_messages(start_server, worker_layer):
    server = start_server()
    ws, connect = open_ws(server, worker_layer, "/room/1")
    reply_channel = connect["reply_channel"]
    ws.send("one")
    ws.send(b"\x00\x01\xff")
    ws.send("three ✓")
    received = [receive(worker_layer, "websocket.receive") for _ in range(3)]
    assert [m["order"] for m in received] == [1, 2, 3]
    assert all(m["reply_channel"] == reply_channel and m["path"] == "/room/1" for m in received)
    assert (received[0]["text"], received[0]["bytes"]) == ("one", None)
    assert (received[1]["text"], received[1]["bytes"]) == (None, b"\x00\x01\xff")
    assert (received[2]["text"], received[2]["bytes"]) == ("three ✓", None)
    ws.close()  # code 1000

    disconnect = receive(worker_layer, "websocket.disconnect")
    assert disconnect["reply_channel"] == reply_channel
    assert disconnect["code"] == 1000
    assert disconnect["order"] == 4
    assert disconnect["path"] == "/room/1"
    assert disconnects_for(worker_layer, reply_channel) == []  # exactly once


def test_disconnect_with_client_close_code(start_server, worker_layer):
    server = start_server()
    ws, connect = open_ws(server, worker_layer)
    ws.close(code=4321)
    disconnect = receive(worker_layer, "websocket.disconnect")
    assert (disconnect["code"], disconnect["order"]) == (4321, 1)
    assert disconnects_for(worker_layer, connect["reply_channel"]) == []


def test_disconnect_when_tcp_is_dropped(start_server, worker_layer):
    server = start_server()
    raw = RawWebSocket(server.port, "/drop")
    connect = receive(worker_layer, "websocket.connect")
    worker_layer.send(connect["reply_channel"], {"accept": True})
    raw.expect_upgrade()
    raw.send_frame(0x1, b"before the drop")
    assert receive(worker_layer, "websocket.receive")["order"] == 1
    raw.abort()  # no close frame
    disconnect = receive(worker_layer, "websocket.disconnect")
    assert disconnect["reply_channel"] == connect["reply_channel"]
    assert disconnect["code"] in (1001, 1006)
    assert disconnect["order"] == 2
    assert disconnects_for(worker_layer, connect["reply_channel"]) == []


def test_server_keeps_serving_after_a_client_drops_mid_frame(start_server, worker_layer):
    server = start_server()
    raw = RawWebSocket(server.port)
    connect = receive(worker_layer, "websocket.connect")
    worker_layer.send(connect["reply_channel"], {"accept": True})
    raw.expect_upgrade()
    raw.sock.sendall(b"\x81\xfe\x10\x00abcd" + b"x" * 100)  # a 4 KiB frame, cut short
    raw.abort()
    assert receive(worker_layer, "websocket.disconnect")["code"] in (1001, 1006)
    ws, _ = open_ws(server, worker_layer)
    with ws:
        ws.send("still here")
        assert receive(worker_layer, "websocket.receive")["text"] == "still here"


# -- replies on an open socket -------------------------------------------------------------------


def test_replies_on_an_open_socket(start_server, worker_layer):
    server = start_server()
    ws, connect = open_ws(server, worker_layer)
    reply = connect["reply_channel"]
    worker_layer.send(reply, {"text": "hello"})
    assert ws.recv(timeout=5) == "hello"
    worker_layer.send(reply, {"bytes": b"\x00\x01"})
    assert ws.recv(timeout=5) == b"\x00\x01"
    worker_layer.send(reply, {"accept": True, "text": "again"})  # accept is ignored once open
    assert ws.recv(timeout=5) == "again"
    worker_layer.send(reply, {"text": "last", "close": True})
    received, closed = wait_closed(ws)
    assert received == ["last"]
    assert close_code(closed) == 1000
    disconnects = disconnects_for(worker_layer, reply)
    assert [d["code"] for d in disconnects] == [1000]


def test_frames_larger_than_the_socket_buffer_to_a_slow_reader_arrive_whole_and_in_order(start_server, worker_layer):
    """Frames are written straight to the socket when nothing is queued; what the kernel does not
    take is queued, and later frames wait behind it."""
    server = start_server()
    ws, connect = open_ws(server, worker_layer, max_size=None)
    reply = connect["reply_channel"]
    frames = [bytes([i]) * 900_000 for i in range(4)] + [b"tail"]
    for frame in frames:
        worker_layer.send(reply, {"bytes": frame})
    time.sleep(0.5)  # the client reads nothing meanwhile: the server's socket buffer fills
    assert [ws.recv(timeout=10) for _ in frames] == frames
    ws.close()


def test_close_reply_with_a_code(start_server, worker_layer):
    server = start_server()
    ws, connect = open_ws(server, worker_layer)
    worker_layer.send(connect["reply_channel"], {"close": 4005})
    received, closed = wait_closed(ws)
    assert (received, close_code(closed)) == ([], 4005)
    assert len(disconnects_for(worker_layer, connect["reply_channel"])) == 1


def test_invalid_reply_on_an_open_socket_closes_it_with_1011(start_server, worker_layer):
    server = start_server()
    ws, connect = open_ws(server, worker_layer)
    other, _ = open_ws(server, worker_layer)
    worker_layer.send(connect["reply_channel"], {"text": "a", "bytes": b"b"})
    received, closed = wait_closed(ws)
    assert received == []
    assert close_code(closed) == 1011
    assert "Bad WebSocket reply" in server.output()
    assert len(disconnects_for(worker_layer, connect["reply_channel"])) == 1
    # the server goes on serving the other socket, and new ones
    with other:
        other.send("ping")
        message = receive(worker_layer, "websocket.receive")
        worker_layer.send(message["reply_channel"], {"text": "pong"})
        assert other.recv(timeout=5) == "pong"
    third, _ = open_ws(server, worker_layer)
    third.close()


def test_reply_with_unknown_keys_on_an_open_socket(start_server, worker_layer):
    server = start_server()
    ws, connect = open_ws(server, worker_layer)
    worker_layer.send(connect["reply_channel"], {"txt": "typo"})
    _, closed = wait_closed(ws)
    assert close_code(closed) == 1011
    assert "unknown keys" in server.output()


def test_reply_after_the_client_left_is_dropped(start_server, worker_layer):
    server = start_server()
    ws, connect = open_ws(server, worker_layer)
    ws.close()
    receive(worker_layer, "websocket.disconnect")
    worker_layer.send(connect["reply_channel"], {"text": "too late"})
    time.sleep(0.3)
    ws2, _ = open_ws(server, worker_layer)
    with ws2:
        assert server.process.poll() is None
        ws2.send("x")
        assert receive(worker_layer, "websocket.receive")["text"] == "x"


# -- sub-protocols ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["chat.v1", "chat.v2"], "chat.v1"),  # the client's first choice the server supports
        (["chat.v2", "chat.v1"], "chat.v2"),
        (["other", "chat.v2"], "chat.v2"),
        (["other", "unknown"], None),
    ],
)
def test_subprotocol_negotiation(start_server, worker_layer, offered, chosen):
    server = start_server("--ws-protocol", "chat.v2", "chat.v1")
    ws, connect = open_ws(server, worker_layer, subprotocols=offered)
    with ws:
        assert ws.subprotocol == chosen
        offered_header = [v for n, v in connect["headers"] if n == b"sec-websocket-protocol"]
        assert b", ".join(offered_header).decode() == ", ".join(offered)


def test_no_subprotocol_when_the_server_has_none(start_server, worker_layer):
    server = start_server()
    ws, _ = open_ws(server, worker_layer, subprotocols=["chat.v1"])
    with ws:
        assert ws.subprotocol is None


# -- limits --------------------------------------------------------------------------------------


def test_max_message_size(start_server, worker_layer):
    server = start_server("--max-ws-message-size", "1000")
    ws, connect = open_ws(server, worker_layer)
    ws.send("a" * 900)
    assert receive(worker_layer, "websocket.receive")["text"] == "a" * 900
    ws.send(b"b" * 1000)
    assert receive(worker_layer, "websocket.receive")["bytes"] == b"b" * 1000
    ws.send("c" * 2000)
    _, closed = wait_closed(ws)
    assert close_code(closed) == 1009
    assert drain(worker_layer, "websocket.receive", settle=0.3) == []
    disconnects = disconnects_for(worker_layer, connect["reply_channel"])
    assert len(disconnects) == 1
    assert disconnects[0]["order"] == 3


def test_max_message_size_counts_fragments(start_server, worker_layer):
    server = start_server("--max-ws-message-size", "1000")
    ws, _ = open_ws(server, worker_layer)
    ws.send(["x" * 600, "y" * 600])  # one message in two 600-byte frames
    _, closed = wait_closed(ws)
    assert close_code(closed) == 1009
    assert drain(worker_layer, "websocket.receive", settle=0.3) == []


def test_channel_full_on_receive_waits_and_loses_nothing(start_server, worker_layer):
    """Capacity 1 and a slow reader: the frames wait in the server (the socket is paused), none is lost."""
    server = start_server(layer_options={"capacity": 1})
    ws, connect = open_ws(server, worker_layer)
    for i in range(12):
        ws.send(f"message {i}")
    texts = []
    for _ in range(12):
        time.sleep(0.05)  # the channel stays full meanwhile
        texts.append(receive(worker_layer, "websocket.receive")["text"])
    assert texts == [f"message {i}" for i in range(12)]
    ws.send("still open")
    assert receive(worker_layer, "websocket.receive")["text"] == "still open"
    ws.close()
    assert len(disconnects_for(worker_layer, connect["reply_channel"])) == 1
    assert worker_layer.channel_statistics("websocket.receive")["channel_full_count"] > 0


def test_channel_full_past_send_timeout_closes_with_1013(start_server, worker_layer):
    server = start_server("--send-timeout", "1", layer_options={"capacity": 1})
    ws, connect = open_ws(server, worker_layer)  # nobody reads websocket.receive from here on
    sent_at = time.monotonic()
    try:
        for i in range(5):
            ws.send(f"message {i}")
    except ConnectionClosed:
        pass
    _, closed = wait_closed(ws, timeout=6)
    assert close_code(closed) == 1013
    assert 0.8 <= time.monotonic() - sent_at < 4, time.monotonic() - sent_at
    assert "waited longer than send_timeout" in server.output()
    first = receive(worker_layer, "websocket.receive")
    assert first["text"] == "message 0"
    disconnects = disconnects_for(worker_layer, connect["reply_channel"])
    assert len(disconnects) == 1  # (Daphne sent none after 1013; this server tells the app once)


def test_websocket_timeout_closes_an_open_socket(start_server, worker_layer):
    server = start_server("--websocket-timeout", "1")
    ws, connect = open_ws(server, worker_layer)
    opened = time.monotonic()
    _, closed = wait_closed(ws, timeout=6)
    elapsed = time.monotonic() - opened
    assert close_code(closed) == 1000
    assert 0.7 <= elapsed <= 3.0, elapsed
    assert "maximum lifetime" in server.output()
    assert len(disconnects_for(worker_layer, connect["reply_channel"])) == 1


def test_websocket_timeout_minus_one_means_forever(start_server, worker_layer):
    server = start_server("--websocket-timeout", "-1")
    ws, connect = open_ws(server, worker_layer)
    with ws:
        time.sleep(1.5)
        worker_layer.send(connect["reply_channel"], {"text": "alive"})
        assert ws.recv(timeout=5) == "alive"


# -- load ----------------------------------------------------------------------------------------


def test_concurrent_clients_get_every_echo_in_order(start_server, worker_layer):
    server = start_server(layer_options={"capacity": 5000})
    clients, messages = 50, 20

    def client(index: int) -> list[str]:
        with ws_connect(server.ws_url + f"/echo/{index}") as ws:
            for j in range(messages):
                ws.send(f"client {index} message {j}")
            return [ws.recv(timeout=15) for _ in range(messages)]

    with Worker(worker_layer) as worker, ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
        deadline = time.monotonic() + 5
        while len(worker.disconnects) < clients and time.monotonic() < deadline:
            time.sleep(0.05)
    for index, got in enumerate(results):
        assert got == [f"client {index} message {j}" for j in range(messages)]
    assert len(worker.connects) == clients
    assert len(worker.receives) == clients * messages
    by_channel: dict[str, list[int]] = {}
    for message in worker.receives:
        by_channel.setdefault(message["reply_channel"], []).append(message["order"])
    assert all(orders == list(range(1, messages + 1)) for orders in by_channel.values())
    assert len(worker.disconnects) == clients
    assert sorted(d["reply_channel"] for d in worker.disconnects) == sorted(by_channel)
    assert all(d["order"] == messages + 1 and d["code"] == 1000 for d in worker.disconnects)


def test_in_memory_layer_echo(start_server):
    server = start_server(layer_path="tests.interface_server.inmemory_echo:channel_layer")
    with ws_connect(server.ws_url + "/echo") as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00\x01\x02")
        assert ws.recv(timeout=5) == b"\x00\x01\x02"
        for i in range(20):
            ws.send(f"n{i}")
        assert [ws.recv(timeout=5) for _ in range(20)] == [f"n{i}" for i in range(20)]


def test_many_pending_handshakes_are_answered_independently(start_server, worker_layer):
    """Replies go to the right socket when several handshakes are pending at once."""
    server = start_server()
    futures = [connect_in_background(server.ws_url + f"/p/{i}") for i in range(10)]
    connects = [receive(worker_layer, "websocket.connect") for _ in range(10)]
    for message in connects:
        worker_layer.send(message["reply_channel"], {"text": message["path"]})
    for i, future in enumerate(futures):
        with future.result(10) as ws:
            assert ws.recv(timeout=5) == f"/p/{i}"


# -- protocol errors -------------------------------------------------------------------------------


def test_invalid_utf8_text_closes_with_1007(start_server, worker_layer):
    server = start_server()
    raw = RawWebSocket(server.port)
    connect = receive(worker_layer, "websocket.connect")
    worker_layer.send(connect["reply_channel"], {"accept": True})
    raw.expect_upgrade()
    raw.send_frame(0x1, b"ok")
    raw.send_frame(0x1, b"\xff\xfe not utf-8")
    opcode, payload = raw.read_frame()
    assert (opcode, payload[:2]) == (0x8, (1007).to_bytes(2, "big"))  # a close frame, not a TCP drop
    raw.close()
    assert [m["text"] for m in drain(worker_layer, "websocket.receive", settle=0.3)] == ["ok"]
    disconnects = disconnects_for(worker_layer, connect["reply_channel"])
    assert len(disconnects) == 1 and disconnects[0]["order"] == 2


def test_bad_handshake_is_refused_without_a_connect_message(start_server, worker_layer):
    server = start_server()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )  # no Sec-WebSocket-Key
        response = b""
        while chunk := sock.recv(4096):
            response += chunk
    assert response.startswith(b"HTTP/1.1 400"), response
    assert drain(worker_layer, "websocket.connect", settle=0.3) == []
    assert drain(worker_layer, "websocket.disconnect", settle=0) == []
    ws, _ = open_ws(server, worker_layer)
    ws.close()


def test_null_origin_is_allowed(start_server, worker_layer):
    server = start_server()
    ws, message = open_ws(server, worker_layer, origin="null")
    with ws:
        assert [b"origin", b"null"] in [list(h) for h in message["headers"]]


def test_upgrade_after_a_keep_alive_http_request(start_server, worker_layer):
    """A WebSocket handshake on a connection that already served an HTTP request."""
    server = start_server()
    raw = RawWebSocket(server.port, path=None)
    raw.sock.sendall(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
    request = receive(worker_layer, "http.request")
    worker_layer.send(request["reply_channel"], {"status": 200, "content": b"page"})
    head = raw.read_response_head()
    assert head.startswith(b"HTTP/1.1 200"), head
    assert raw.read_exactly(4) == b"page"
    raw.send_handshake("/ws?after=http")
    connect = receive(worker_layer, "websocket.connect")
    assert (connect["path"], connect["query_string"], connect["order"]) == ("/ws", b"after=http", 0)
    worker_layer.send(connect["reply_channel"], {"accept": True, "text": "upgraded"})
    raw.expect_upgrade()
    assert raw.read_frame() == (0x1, b"upgraded")
    raw.send_frame(0x2, b"\x01")
    assert receive(worker_layer, "websocket.receive")["bytes"] == b"\x01"
    raw.close()
    assert len(disconnects_for(worker_layer, connect["reply_channel"])) == 1
