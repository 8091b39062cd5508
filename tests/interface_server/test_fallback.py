"""Sockets over Server-Sent Events + POST and over long-polling, through the real server on Redis.

Each test runs an `interface-server` subprocess and plays the worker on the
layer (`websocket.connect/receive/disconnect` in, replies out), with real
HTTP clients on real sockets (`fallback_support`): the consumer must see
exactly what it sees for a WebSocket.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time

import pytest

from channels_core.layers.history import Position, envelope, parse_since
from interface_server import cli
from tests.support.waiting import wait_for

from .fallback_support import PREFIX, SSEClient, in_background, poll, request
from .harness import assert_nothing_on
from .ws_support import disconnects_for, drain, receive


def open_sse(server, layer, path="/ws/echo/", reply=None, headers=None) -> tuple[SSEClient, dict]:
    client = SSEClient(server.port, path, headers)
    connect = receive(layer, "websocket.connect")
    layer.send(connect["reply_channel"], {"accept": True} if reply is None else reply)
    assert client.opened() == 200
    return client, connect


def open_poll(server, layer, path="/ws/echo/", reply=None) -> tuple[dict, dict]:
    opening = in_background(request, server.port, "GET", PREFIX + "poll" + path)
    connect = receive(layer, "websocket.connect")
    layer.send(connect["reply_channel"], {"accept": True} if reply is None else reply)
    status, headers, body = opening.result(10)
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    return json.loads(body), connect


# -- SSE + POST --------------------------------------------------------------------------------


def test_sse_connect_message_is_the_websockets_and_frames_go_both_ways_in_order(start_server, worker_layer):
    server = start_server()
    client, connect = open_sse(
        server,
        worker_layer,
        "/ws/chat%20room/?x=1&lastEventId=g1%3A7&y=2",
        headers={"Cookie": "sessionid=abc", "Origin": "http://127.0.0.1"},
    )
    # What a consumer reads: the WebSocket's keys, path and query, the page's cookies; Last-Event-ID as a header.
    assert set(connect) >= {"reply_channel", "path", "query_string", "headers", "client", "server", "scheme", "order"}
    assert connect["reply_channel"].startswith(server.reply_prefix())
    assert connect["path"] == "/ws/chat room/"
    assert connect["query_string"] == b"x=1&y=2"
    assert connect["scheme"] == "ws"
    assert connect["order"] == 0
    headers = dict((name, value) for name, value in connect["headers"])
    assert headers[b"cookie"] == b"sessionid=abc"
    assert headers[b"last-event-id"] == b"g1:7"
    assert not any(b"channels" in value for value in headers.values())
    assert client.response.getheader("content-type") == "text/event-stream; charset=utf-8"
    reply_channel = connect["reply_channel"]

    # Client to server: two POSTs, text (a line break, non-ASCII) and bytes, each numbered in order.
    assert client.send(server.port, 1, [{"text": "hé\nllo"}, {"bytes": base64.b64encode(b"\x00\xff").decode()}]) == 204
    assert client.send(server.port, 2, [{"text": "third"}]) == 204
    received = [receive(worker_layer, "websocket.receive") for _ in range(3)]
    assert [(m["text"], m["bytes"], m["order"]) for m in received] == [
        ("hé\nllo", None, 1),
        (None, b"\x00\xff", 2),
        ("third", None, 3),
    ]
    assert all(m["reply_channel"] == reply_channel and m["path"] == "/ws/chat room/" for m in received)

    # Server to client: each reply is an event with its id.
    worker_layer.send(reply_channel, {"text": 'line\r\nbreaks "quoted"'})
    worker_layer.send(reply_channel, {"bytes": b"\x01\x02"})
    first, second = client.next_event(), client.next_event()
    assert first["data"] == {"id": 1, "text": 'line\r\nbreaks "quoted"'}
    assert (second["data"]["id"], base64.b64decode(second["data"]["bytes"])) == (2, b"\x01\x02")
    assert first["id"] is None  # an SSE id only for group history frames (test_sse_resumes_...)

    # The client closes: one disconnect with its code, after the frames.
    assert client.close(server.port, 3001) == 204
    disconnect = receive(worker_layer, "websocket.disconnect")
    assert (disconnect["reply_channel"], disconnect["code"], disconnect["order"]) == (reply_channel, 3001, 4)
    assert disconnects_for(worker_layer, reply_channel) == []
    assert client.send(server.port, 3, [{"text": "late"}]) == 404  # the session is gone


def test_sse_the_application_closes_and_rejects(start_server, worker_layer):
    server = start_server()
    client, connect = open_sse(server, worker_layer, reply={"accept": True, "text": "welcome"})
    assert client.next_event()["data"] == {"id": 1, "text": "welcome"}
    worker_layer.send(connect["reply_channel"], {"text": "bye", "close": 4000})
    assert client.next_event()["data"] == {"id": 2, "text": "bye"}
    assert client.next_event()["data"] == {"id": 3, "close": 4000}
    assert client.rest() == b""  # and the response ends
    assert receive(worker_layer, "websocket.disconnect")["code"] == 4000

    # A rejection is the handshake's 403; the application hears the disconnect as for a WebSocket.
    refused = SSEClient(server.port, "/ws/echo/")
    connect = receive(worker_layer, "websocket.connect")
    worker_layer.send(connect["reply_channel"], {"close": True})
    assert refused.opened() == 403
    assert disconnects_for(worker_layer, connect["reply_channel"])[0]["code"] == 1006


def test_sse_client_vanishing_is_a_disconnect(start_server, worker_layer):
    server = start_server()
    client, connect = open_sse(server, worker_layer)
    client.vanish()
    disconnect = receive(worker_layer, "websocket.disconnect")
    assert (disconnect["reply_channel"], disconnect["code"]) == (connect["reply_channel"], 1006)
    # Its replies are dropped, not queued: nothing is left for a client that is gone.
    worker_layer.send(connect["reply_channel"], {"text": "anyone?"})
    assert request(server.port, "POST", f"{PREFIX}s/{client.session}/send", {"seq": 1, "frames": []})[0] == 404


def test_sse_client_leaving_before_the_accept_is_a_disconnect(start_server, worker_layer):
    server = start_server()
    client = SSEClient(server.port, "/ws/echo/")
    connect = receive(worker_layer, "websocket.connect")
    client.vanish()
    assert receive(worker_layer, "websocket.disconnect")["code"] == 1006
    worker_layer.send(connect["reply_channel"], {"accept": True})  # too late: dropped
    assert_nothing_on(worker_layer, ["websocket.disconnect"], 0.3)


def test_posts_reach_the_layer_in_seq_order_once(start_server, worker_layer):
    server = start_server()
    client, connect = open_sse(server, worker_layer)
    # seq 2 arrives first: it waits (its POST unanswered) until seq 1 is in.
    second = in_background(client.send, server.port, 2, [{"text": "two"}])
    time.sleep(0.3)
    assert not second.done()
    assert_nothing_on(worker_layer, ["websocket.receive"], 0.1)
    assert client.send(server.port, 1, [{"text": "one"}]) == 204
    assert second.result(5) == 204
    assert [receive(worker_layer, "websocket.receive")["text"] for _ in range(2)] == ["one", "two"]
    assert client.send(server.port, 1, [{"text": "one again"}]) == 204  # a retried POST: taken once
    assert client.send(server.port, 50, [{"text": "far ahead"}]) == 409
    assert client.send(server.port, 3, [{"text": "three"}]) == 204
    assert receive(worker_layer, "websocket.receive")["text"] == "three"
    assert_nothing_on(worker_layer, ["websocket.receive"], 0.3)


# -- long-polling ----------------------------------------------------------------------------------


def test_poll_connect_echo_acknowledge_and_close_both_ways(start_server, worker_layer):
    server = start_server()
    opened, connect = open_poll(server, worker_layer, reply={"accept": True, "text": "hi"})
    session = opened["session"]
    assert opened["transport"] == "poll"
    assert opened["events"] == [{"id": 1, "text": "hi"}]
    reply_channel = connect["reply_channel"]

    # A poll with nothing new waits for the next reply; unacknowledged events come again (a lost response).
    held = in_background(poll, server.port, session, 1)
    time.sleep(0.3)
    assert not held.done()
    worker_layer.send(reply_channel, {"text": "two"})
    assert held.result(5) == (200, {"events": [{"id": 2, "text": "two"}]})
    assert poll(server.port, session, 1) == (200, {"events": [{"id": 2, "text": "two"}]})

    status, _, _ = request(server.port, "POST", f"{PREFIX}s/{session}/send", {"seq": 1, "frames": [{"text": "up"}]})
    assert status == 204
    message = receive(worker_layer, "websocket.receive")
    assert (message["text"], message["order"], message["reply_channel"]) == ("up", 1, reply_channel)

    # The application closes: the close event, the disconnect with its code, and the session ends.
    worker_layer.send(reply_channel, {"close": 4001})
    assert poll(server.port, session, 2) == (200, {"events": [{"id": 3, "close": 4001}]})
    assert receive(worker_layer, "websocket.disconnect")["code"] == 4001
    assert poll(server.port, session, 3)[0] == 404

    # The client closes: a held poll is answered with the close, the disconnect carries its code.
    opened, connect = open_poll(server, worker_layer)
    held = in_background(poll, server.port, opened["session"], 0)
    time.sleep(0.2)
    assert request(server.port, "POST", f"{PREFIX}s/{opened['session']}/close", {"code": 1000})[0] == 204
    assert held.result(5)[1]["events"][-1]["close"] == 1000
    assert receive(worker_layer, "websocket.disconnect")["code"] == 1000


def test_poll_client_that_stops_polling_is_disconnected(start_server, worker_layer):
    server = start_server("--fallback-session-timeout", "1", "--fallback-poll-timeout", "0.5")
    opened, connect = open_poll(server, worker_layer)
    started = time.monotonic()
    assert poll(server.port, opened["session"]) == (200, {"events": []})  # answered empty after the poll timeout
    assert time.monotonic() - started >= 0.4
    disconnect = receive(worker_layer, "websocket.disconnect", timeout=5)
    assert (disconnect["reply_channel"], disconnect["code"]) == (connect["reply_channel"], 1006)
    assert 0.9 <= time.monotonic() - started <= 4


def test_poll_events_past_the_output_buffer_close_the_socket(start_server, worker_layer):
    server = start_server("--max-output-buffer", "20000")
    opened, connect = open_poll(server, worker_layer)
    for _ in range(5):
        worker_layer.send(connect["reply_channel"], {"text": "x" * 6000})  # nobody polls
    disconnect = receive(worker_layer, "websocket.disconnect")
    assert disconnect["code"] == 1008
    assert poll(server.port, opened["session"])[0] == 404


# -- refusals: hostile, malformed, foreign ------------------------------------------------------------


def test_bad_session_wrong_method_and_malformed_requests(start_server, worker_layer):
    server = start_server("--max-ws-message-size", "1000")
    client, connect = open_sse(server, worker_layer)
    port, sid = server.port, client.session
    guess = "A" * len(sid)
    assert request(port, "POST", f"{PREFIX}s/{guess}/send", {"seq": 1, "frames": []})[0] == 404
    assert request(port, "GET", f"{PREFIX}s/{guess}/poll")[0] == 404
    assert request(port, "GET", f"{PREFIX}nothing")[0] == 404
    assert request(port, "GET", f"{PREFIX}s/{sid}/poll")[0] == 400  # an SSE session is not polled
    status, headers, _ = request(port, "GET", f"{PREFIX}s/{sid}/send")
    assert (status, headers.get("allow")) == (405, "POST")
    status, headers, _ = request(port, "POST", f"{PREFIX}sse/ws/echo/", b"x")
    assert (status, headers.get("allow")) == (405, "GET")
    for body in (
        b"not json",
        b"[]",
        b'{"seq": 0, "frames": []}',
        b'{"seq": 1, "frames": [{"text": 1}]}',
        b'{"seq": 1, "frames": [{"bytes": "***"}]}',
        b'{"seq": 1, "frames": "x", "extra": 1}',
    ):
        assert request(port, "POST", f"{PREFIX}s/{sid}/send", body)[0] == 400, body
    assert request(port, "GET", f"{PREFIX}sse/ws/?lastEventId=a%0Ab")[0] == 400
    assert request(port, "GET", f"{PREFIX}poll/ws/%FF/")[0] == 400
    assert request(port, "GET", f"{PREFIX}s/{sid}/poll?ack=-1")[0] == 400
    assert_nothing_on(worker_layer, ["websocket.receive", "websocket.connect"], 0.2)
    # None of it touched the socket: it still echoes.
    assert client.send(port, 1, [{"text": "still here"}]) == 204
    assert receive(worker_layer, "websocket.receive")["text"] == "still here"
    # A frame over --max-ws-message-size: 413, and the socket closes with 1009 as a WebSocket would.
    assert client.send(port, 2, [{"text": "x" * 1001}]) == 413
    assert client.next_event()["data"]["close"] == 1009
    assert receive(worker_layer, "websocket.disconnect")["code"] == 1009


def test_huge_post_bodies_are_refused_before_they_are_read(start_server, worker_layer):
    server = start_server("--max-ws-message-size", "1000")
    client, connect = open_sse(server, worker_layer)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            f"POST {PREFIX}s/{client.session}/send HTTP/1.1\r\nHost: x\r\nContent-Length: 900000000\r\n\r\n".encode()
        )
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head
    assert receive(worker_layer, "websocket.disconnect")["code"] == 1009
    # Chunked, with no length announced: cut once the limit is passed.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            f"POST {PREFIX}s/{'B' * 32}/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * 60000
        try:
            for _ in range(10):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass  # the server closed on us
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")


def test_allowed_origins_apply_and_a_session_is_bound_to_its_origin(start_server, worker_layer):
    server = start_server("--allowed-origins", "http://good.example")
    status, _, _ = request(server.port, "GET", f"{PREFIX}sse/ws/echo/", headers={"Origin": "http://evil.example"})
    assert status == 403
    assert request(server.port, "GET", f"{PREFIX}poll/ws/echo/")[0] == 403  # no Origin: refused like a handshake
    assert_nothing_on(worker_layer, ["websocket.connect"], 0.3)  # refused before the layer
    client, connect = open_sse(server, worker_layer, headers={"Origin": "http://good.example"})
    assert dict(connect["headers"])[b"origin"] == b"http://good.example"
    foreign = {"Origin": "http://evil.example"}
    assert client.send(server.port, 1, [{"text": "x"}], headers=foreign) == 403
    good = {"Origin": "http://good.example"}
    assert client.send(server.port, 1, [{"text": "ok"}], headers=good) == 204
    assert receive(worker_layer, "websocket.receive")["text"] == "ok"


def test_same_origin_get_gets_the_origin_a_websocket_would_carry(start_server, worker_layer):
    """A same-origin EventSource sends no Origin; Sec-Fetch-Site (set by browsers only) says whose page it is."""
    server = start_server()
    _, connect = open_sse(server, worker_layer, headers={"Sec-Fetch-Site": "same-origin"})
    assert dict(connect["headers"])[b"origin"] == f"http://127.0.0.1:{server.port}".encode()
    _, connect = open_sse(server, worker_layer, headers={"Sec-Fetch-Site": "cross-site"})
    assert b"origin" not in dict(connect["headers"])


def test_fallback_off_leaves_the_prefix_to_the_application(start_server, worker_layer):
    server = start_server("--fallback-transports", "none")
    pending = in_background(request, server.port, "GET", f"{PREFIX}sse/ws/echo/")
    message = receive(worker_layer, "http.request")
    assert message["path"] == f"{PREFIX}sse/ws/echo/"
    worker_layer.send(message["reply_channel"], {"status": 200, "content": b"app"})
    assert pending.result(5)[0] == 200
    server = start_server("--fallback-transports", "poll")
    assert request(server.port, "GET", f"{PREFIX}sse/ws/echo/")[0] == 404


def test_shutdown_closes_fallback_sockets_with_1001_after_their_disconnect(start_server, worker_layer):
    server = start_server()
    client, connect = open_sse(server, worker_layer)
    opened, polled = open_poll(server, worker_layer)
    held = in_background(poll, server.port, opened["session"], 0)
    time.sleep(0.2)
    server.terminate()
    assert client.next_event()["data"]["close"] == 1001
    assert held.result(5)[1]["events"][-1]["close"] == 1001
    codes = {m["reply_channel"]: m["code"] for m in drain(worker_layer, "websocket.disconnect")}
    assert codes == {connect["reply_channel"]: 1001, polled["reply_channel"]: 1001}


# -- leases: the same guarantees as a WebSocket's ------------------------------------------------------


def test_a_sigkilled_servers_fallback_sockets_get_their_disconnect_from_the_sweeper(start_server, worker_layer):
    server = start_server("--lease-ttl", "1.5")
    holder = server.reply_prefix()
    _, sse = open_sse(server, worker_layer)
    _, polled = open_poll(server, worker_layer)
    assert wait_for(lambda: len(worker_layer.lease_connections(holder)) == 2, 5)
    server.process.kill()
    killed = time.monotonic()
    swept = []
    while not swept and time.monotonic() - killed < 7:
        swept = worker_layer.lease_sweep("test-sweeper", 5)
        time.sleep(0.1)
    assert swept == [holder]
    codes = {m["reply_channel"]: m["code"] for m in drain(worker_layer, "websocket.disconnect")}
    assert codes == {sse["reply_channel"]: 1006, polled["reply_channel"]: 1006}


def test_a_flushed_layer_closes_fallback_sockets_with_1012_and_one_disconnect(start_server, worker_layer):
    server = start_server("--lease-ttl", "1.5")
    assert wait_for(lambda: server.reply_prefix() in worker_layer.lease_holders(), 5)
    client, connect = open_sse(server, worker_layer)
    assert wait_for(lambda: worker_layer.lease_connections(server.reply_prefix()), 5)  # tracked
    worker_layer.flush()  # what a Redis restart without persistence leaves
    event = client.next_event()
    assert event["data"].get("close") == 1012, (event, server.output())
    got: list[dict] = []
    assert wait_for(lambda: got.extend(disconnects_for(worker_layer, connect["reply_channel"], 0.1)) or got, 10)
    got += disconnects_for(worker_layer, connect["reply_channel"], 0.5)
    assert [m["code"] for m in got] == [1012], (got, server.output())  # one, sent plainly


def test_expect_100_continue_and_the_open_sockets_gauge(start_server, worker_layer):
    """A client that waits for `100 Continue` (curl does, for bodies over 1 KB) gets it; /metrics counts the socket."""
    server = start_server("--metrics-port", "0")
    client, _ = open_sse(server, worker_layer)
    body = json.dumps({"seq": 1, "frames": [{"text": "y" * 2000}]}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        head = (
            f"POST {PREFIX}s/{client.session}/send HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n\r\n"
        )
        sock.sendall(head.encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 ")
        sock.sendall(body)
        assert sock.recv(4096).startswith(b"HTTP/1.1 204 ")
    assert receive(worker_layer, "websocket.receive")["text"] == "y" * 2000
    port = re.search(r"Metrics on http://127\.0\.0\.1:(\d+)/metrics", server.output()).group(1)
    metrics = request(int(port), "GET", "/metrics")[2].decode()
    assert 'channels_interface_connections{type="websocket"} 1.0' in metrics, metrics


def test_an_sse_client_that_acknowledges_nothing_is_dropped_within_two_pings(start_server, worker_layer):
    """SSE has no pong: a client with bytes outstanding that acknowledges none of them for a ping interval is gone."""
    server = start_server("--ping-interval", "0.3")
    # A live client under steady traffic stays: it acknowledges as it reads.
    live, connect = open_sse(server, worker_layer)
    for n in range(40):
        worker_layer.send(connect["reply_channel"], {"text": f"{n} " + "z" * 3000})
        assert live.next_event()["data"]["id"] == n + 1
        time.sleep(0.03)
    # One that stops reading (a small receive buffer, then nothing): its bytes stay in the server's send queue.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", server.port))
    stalled.sendall(f"GET {PREFIX}sse/ws/echo/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    stalled_connect = receive(worker_layer, "websocket.connect")
    worker_layer.send(stalled_connect["reply_channel"], {"accept": True})
    assert stalled.recv(100).startswith(b"HTTP/1.1 200 ")
    for _ in range(60):
        worker_layer.send(stalled_connect["reply_channel"], {"text": "w" * 4000})
    started = time.monotonic()
    disconnect = receive(worker_layer, "websocket.disconnect", timeout=10)
    assert (disconnect["reply_channel"], disconnect["code"]) == (stalled_connect["reply_channel"], 1006)
    assert time.monotonic() - started < 3
    stalled.close()
    assert disconnects_for(worker_layer, connect["reply_channel"], 0.5) == []  # the live one is still there
    assert live.send(server.port, 1, [{"text": "still here"}]) == 204


# -- the command line --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--fallback-transports", "sse,websocket"], "--fallback-transports: unknown transport 'websocket'"),
        (["--fallback-prefix", "_channels/"], "--fallback-prefix must be a path"),
        (["--fallback-prefix", "/chan nels/"], "--fallback-prefix must be a path"),
        (["--fallback-poll-timeout", "0"], "--fallback-poll-timeout must be positive"),
        (["--fallback-session-timeout", "-1"], "--fallback-session-timeout must be positive"),
    ],
)
def test_bad_fallback_options_are_usage_errors(args, fragment):
    with pytest.raises(cli.UsageError, match=re.escape(fragment)):
        cli.config_from_args(cli.build_parser().parse_args(["x:y", *args]), {})


def test_fallback_options_reach_the_config():
    parse = cli.build_parser().parse_args
    config = cli.config_from_args(parse(["x:y", "--fallback-transports", "poll", "--fallback-prefix", "/fb/"]), {})
    assert (config.fallback_transports, config.fallback_prefix) == (["poll"], "/fb/")
    assert cli.config_from_args(parse(["x:y", "--fallback-transports", "none"]), {}).fallback_transports == []
    assert cli.config_from_args(parse(["x:y"]), {}).fallback_transports == ["sse", "poll"]


def test_another_prefix_is_served_and_the_default_one_goes_to_the_application(start_server, worker_layer):
    server = start_server("--fallback-prefix", "/fb/")
    opening = in_background(request, server.port, "GET", "/fb/poll/ws/echo/")
    connect = receive(worker_layer, "websocket.connect")
    worker_layer.send(connect["reply_channel"], {"accept": True})
    assert opening.result(5)[0] == 200
    pending = in_background(request, server.port, "GET", f"{PREFIX}sse/ws/echo/")
    message = receive(worker_layer, "http.request")
    assert message["path"] == f"{PREFIX}sse/ws/echo/"
    worker_layer.send(message["reply_channel"], {"status": 204})
    assert pending.result(5)[0] == 204


def test_sse_resumes_group_history_with_last_event_id_as_a_plain_eventsource_does(start_server, worker_layer):
    """History frames' SSE ids are the positions; an EventSource reconnecting by itself sends the last one back
    as Last-Event-ID, which reaches the consumer as since= in the query string (what @resume_groups reads)."""
    server = start_server()
    client, connect = open_sse(server, worker_layer)
    worker_layer.send(connect["reply_channel"], envelope({"text": "a"}, "room-1", "e1", 4))
    worker_layer.send(connect["reply_channel"], {"text": "not history"})
    worker_layer.send(connect["reply_channel"], envelope({"text": "b"}, "feed", "e2", 9))
    ids = [client.next_event()["id"] for _ in range(3)]
    assert ids == ["room-1:e1:4", None, "feed:e2:9,room-1:e1:4"]
    client.vanish()
    _, again = open_sse(server, worker_layer, "/ws/echo/?x=1", headers={"Last-Event-ID": ids[-1]})
    assert dict(again["headers"])[b"last-event-id"] == b"feed:e2:9,room-1:e1:4"
    assert parse_since(again["query_string"]) == {"feed": Position("e2", 9), "room-1": Position("e1", 4)}
    assert again["query_string"].startswith(b"x=1&since=")
