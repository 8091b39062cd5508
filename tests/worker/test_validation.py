"""Messages of the wrong shape on the ASGI channels: dropped before routing, counted, logged once, answered."""

from __future__ import annotations

import logging

import pytest

from channels_core.asgi import ChannelLayerWrapper
from channels_core.layers import InMemoryChannelLayer
from routing import route
from worker import Worker, WorkerGroup
from worker.validation import problem

GOOD = {
    "http.request": {"reply_channel": "r!a", "method": "GET", "path": "/", "query_string": b"", "headers": []},
    "http.disconnect": {"reply_channel": "r!a", "path": "/"},
    "websocket.connect": {"reply_channel": "r!a", "path": "/ws/", "headers": [[b"host", b"x"]], "order": 0},
    "websocket.receive": {"reply_channel": "r!a", "path": "/ws/", "text": "hi", "bytes": None, "order": 1},
    "websocket.disconnect": {"reply_channel": "r!a", "path": "/ws/", "code": 1000, "order": 2},
}


@pytest.mark.parametrize("channel", list(GOOD))
def test_what_an_interface_server_sends_passes(channel):
    assert problem(channel, GOOD[channel]) is None


@pytest.mark.parametrize(
    "channel, change, expected",
    [
        ("http.request", {"reply_channel": None}, "'reply_channel' is a NoneType"),
        ("http.request", {"path": 5}, "'path' is a int"),
        ("http.request", {"method": b"GET"}, "'method' is a bytes"),
        ("http.request", {"body": "text"}, "'body' is a str"),
        ("http.request", {"headers": [[b"a"]]}, "'headers' is not a list of [name, value] pairs of bytes"),
        ("http.request", {"headers": "x: y"}, "'headers' is not a list of [name, value] pairs of bytes"),
        ("websocket.connect", {"order": True}, "'order' is a bool"),
        ("websocket.receive", {"text": b"bytes, not text"}, "'text' is a bytes"),
        ("websocket.receive", {"bytes": "text, not bytes"}, "'bytes' is a str"),
        ("websocket.disconnect", {"code": "1000"}, "'code' is a str"),
    ],
)
def test_wrong_types_are_named(channel, change, expected):
    assert problem(channel, {**GOOD[channel], **change}) == expected


@pytest.mark.parametrize("channel", list(GOOD))
def test_a_missing_reply_channel_is_named(channel):
    message = dict(GOOD[channel])
    del message["reply_channel"]
    assert problem(channel, message) == "no 'reply_channel'"


def test_other_channels_only_need_a_dict():
    assert problem("my.channel", {}) is None
    assert problem("my.channel", [1, 2]) == "a list, not a dict"


def _layer(routing) -> ChannelLayerWrapper:
    return ChannelLayerWrapper(InMemoryChannelLayer(blocking_timeout=0.05), "test", routing)


def test_invalid_messages_are_dropped_counted_logged_once_and_answered(caplog):
    ran = []
    layer = _layer(
        [route("http.request", lambda m: ran.append(m)), route("websocket.connect", lambda m: ran.append(m))]
    )
    reply = layer.new_channel("test.reply?")
    worker = Worker(layer, signal_handlers=False)
    with caplog.at_level(logging.ERROR, logger="worker"):
        for _ in range(50):
            worker.handle("http.request", {**GOOD["http.request"], "reply_channel": reply, "path": 5})
        worker.handle("websocket.connect", {**GOOD["websocket.connect"], "reply_channel": reply, "order": "0"})
        worker.handle("websocket.receive", {"path": "/ws/", "text": "no reply channel"})
        worker.handle("http.request", {**GOOD["http.request"], "reply_channel": reply})  # a good one
    assert len(ran) == 1
    assert worker.invalid.counts == {"http.request": 50, "websocket.connect": 1, "websocket.receive": 1}
    lines = [r.getMessage() for r in caplog.records if r.name == "worker"]
    assert lines == [
        "Dropped an invalid message on channel 'http.request' ('path' is a int): 1 dropped on this channel so far",
        "Dropped an invalid message on channel 'websocket.connect' ('order' is a str): "
        "1 dropped on this channel so far",
        "Dropped an invalid message on channel 'websocket.receive' (no 'reply_channel'): "
        "1 dropped on this channel so far",
    ]
    answers = []
    while (got := layer.receive([reply], block=False))[0] is not None:
        answers.append(got[1])
    assert [a.get("status") for a in answers[:50]] == [400] * 50
    assert answers[50] == {"close": True}
    assert len(answers) == 51


def test_a_worker_group_counts_and_logs_for_the_whole_process():
    group = WorkerGroup(_layer([]), n_threads=3, signal_handlers=False)
    assert all(w.invalid is group.invalid for w in group.workers)
