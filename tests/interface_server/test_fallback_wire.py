"""The fallback transports' wire rules (interface_server/fallback_wire.py), without a server."""

from __future__ import annotations

import base64

import pytest

from channels_core.layers.history import Position, envelope, parse_since
from interface_server.fallback_wire import (
    BadFallbackRequest,
    history_id,
    parse_close,
    parse_post,
    post_limit,
    route,
    sse_event,
    text_event,
    with_since,
)

P = b"/_channels/"


def test_open_routes_keep_the_websocket_target_and_take_out_last_event_id():
    found = route(b"GET", P + b"sse/ws/chat/?a=1&lastEventId=x%3Ay+z&b=2", P)
    assert (found.action, found.transport, found.target, found.last_event_id) == (
        "open",
        "sse",
        b"/ws/chat/?a=1&b=2",
        b"x:y z",
    )
    found = route(b"GET", P + b"poll/ws/?lastEventId=7", P)
    assert (found.transport, found.target, found.last_event_id) == ("poll", b"/ws/", b"7")
    assert route(b"GET", P + b"sse/", P).target == b"/"


@pytest.mark.parametrize(
    "method,target,status",
    [
        (b"POST", b"sse/ws/", 405),
        (b"GET", b"s/abc/send", 405),
        (b"DELETE", b"s/abc/close", 405),
        (b"GET", b"s/abc/other", 404),
        (b"GET", b"s//poll", 404),
        (b"GET", b"websocket/ws/", 404),
        (b"GET", b"s/abc/poll?ack=x", 400),
        (b"GET", b"s/abc/poll?ack=" + b"9" * 30, 400),
        (b"GET", b"sse/ws/?lastEventId=" + b"a" * 2000, 400),
        (b"GET", b"sse/ws/?lastEventId=a%0Db", 400),
    ],
)
def test_refused_routes(method, target, status):
    with pytest.raises(BadFallbackRequest) as caught:
        route(method, P + target, P)
    assert caught.value.status == status


def test_session_routes():
    assert route(b"GET", P + b"s/abc/poll?ack=12", P).ack == 12
    assert route(b"POST", P + b"s/abc/send", P).session == "abc"
    assert route(b"POST", P + b"s/abc/close", P).action == "close"


def test_sse_events_are_one_json_line_whatever_the_text():
    event = sse_event(text_event(3, "a\nb\r\nc\u2028"))
    assert event.startswith(b'data: {"id":3,') and event.endswith(b"\n\n")
    assert event.count(b"\n") == 2  # data line, blank line: line breaks in the text are escaped; no SSE id


def test_history_frames_get_the_sessions_positions_as_sse_id_and_they_come_back_as_since():
    positions: dict[str, str] = {}
    frame = envelope({"text": "hi"}, "room-1", "e1", 7)["text"]
    assert history_id(positions, frame) == "room-1:e1:7"
    assert history_id(positions, envelope({"text": "x"}, "feed", "e2", 3)["text"]) == "feed:e2:3,room-1:e1:7"
    assert history_id(positions, '{"not": "history"}') is None
    event = text_event(9, frame)
    event["_sse_id"] = "feed:e2:3,room-1:e1:7"
    assert sse_event(event).startswith(b'id: feed:e2:3,room-1:e1:7\ndata: {"id":9,"text":')
    # Last-Event-ID back into the query string @resume_groups reads; the bridge's own since= wins.
    target = with_since(b"/ws/?a=1", b"feed:e2:3,room-1:e1:7,junk")
    assert parse_since(target.partition(b"?")[2]) == {"feed": Position("e2", 3), "room-1": Position("e1", 7)}
    assert target.startswith(b"/ws/?a=1&since=")
    assert with_since(b"/ws/?since=room-1%3Ae1%3A9", b"room-1:e1:7") == b"/ws/?since=room-1%3Ae1%3A9"
    assert with_since(b"/ws/", b"17") == b"/ws/"  # not positions: a plain client's own ids are left alone
    assert with_since(b"/ws/", None) == b"/ws/"
    assert sse_event(name="session", data={"session": "s"}) == b'event: session\ndata: {"session":"s"}\n\n'


def test_posts():
    post = parse_post(b'{"seq": 4, "frames": [{"text": "h\\u00e9"}, {"bytes": "AAE="}]}', 100)
    assert (post.seq, post.frames) == (4, [("hé".encode(), False), (b"\x00\x01", True)])
    big = base64.b64encode(b"x" * 101).decode()
    for body, status in [
        (b'{"seq": 1, "frames": [{"bytes": "%s"}]}' % big.encode(), 413),
        (b'{"seq": 1, "frames": [{"text": "\\ud800"}]}', 400),
        (b'{"seq": true, "frames": []}', 400),
        (b'{"seq": 1, "frames": [{"text": "a", "bytes": "AA=="}]}', 400),
        (b"\xff", 400),
    ]:
        with pytest.raises(BadFallbackRequest) as caught:
            parse_post(body, 100)
        assert caught.value.status == status, body
    assert post_limit(1000) > 1000 * 4 / 3


def test_close_bodies():
    assert parse_close(b"") == 1000
    assert parse_close(b'{"code": 4000}') == 4000
    for body in (b'{"code": 1006}', b'{"code": "x"}', b"[1]", b"nope"):
        with pytest.raises(BadFallbackRequest):
            parse_close(body)
