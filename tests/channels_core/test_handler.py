"""The HTTP bridge in-process: AsgiRequest, AsgiHandler, encode_response, ViewConsumer, StaticFilesConsumer.

Messages are built by hand and carried by the in-memory layer; no subprocess.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time

import pytest
from django.core.signals import request_finished, request_started
from django.http import FileResponse, HttpResponse, StreamingHttpResponse

from channels_core.exceptions import RequestAborted, RequestTimeout
from channels_core.handler import AsgiHandler, AsgiRequest, BodyStream, ViewConsumer, shared_handler
from channels_core.layers import InMemoryChannelLayer
from channels_core.message import Message
from channels_core.staticfiles import StaticFilesConsumer, StaticFilesHandler
from tests.channels_core import urls as test_views

CHUNK = 512 * 1024

# The handler fires request_started/finished, whose close_old_connections touches the database connection.
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _urls(settings):
    settings.ROOT_URLCONF = "tests.channels_core.urls"
    test_views.STATE.clear()


@pytest.fixture
def layer():
    return InMemoryChannelLayer(blocking_timeout=0.05)


def make_message(
    layer,
    path="/",
    method="GET",
    headers=(),
    body=b"",
    query_string=b"",
    body_channel=None,
    reply_channel="http.response.test?reply",
    **extra,
):
    content = {
        "reply_channel": reply_channel,
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "query_string": query_string,
        "root_path": "",
        "headers": [[b"host", b"127.0.0.1"], *[[n, v] for n, v in headers]],
        "body": body,
        "client": ["10.1.2.3", 43210],
        "server": ["127.0.0.1", 8000],
        **extra,
    }
    if body_channel is not None:
        content["body_channel"] = body_channel
    return Message(content, "http.request", layer)


def send_chunks(layer, channel, data, size=256 * 1024):
    """`data` as body chunks on `channel`, the last with more_content False."""
    pieces = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    for i, piece in enumerate(pieces):
        layer.send(channel, {"content": piece, "more_content": i < len(pieces) - 1})


def multipart(fields, files, boundary="----testboundary7MA4YWxk"):
    out = []
    for name, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


class QuickRequest(AsgiRequest):
    body_receive_timeout = 0.3


class QuickHandler(AsgiHandler):
    request_class = QuickRequest


def run(handler, message):
    return list(handler(message))


def json_body(replies):
    return json.loads(b"".join(r.get("content", b"") for r in replies))


# -- AsgiRequest ----------------------------------------------------------------------


def test_request_meta_basics(layer):
    message = make_message(layer, "/meta/", method="get", query_string=b"a=1&b=%C3%A9&a=2")
    request = AsgiRequest(message)
    meta = request.META
    assert request.method == "GET"
    assert meta["REQUEST_METHOD"] == "GET"
    assert meta["QUERY_STRING"] == "a=1&b=%C3%A9&a=2"
    assert meta["SCRIPT_NAME"] == ""
    assert meta["PATH_INFO"] == "/meta/"
    assert meta["REMOTE_ADDR"] == meta["REMOTE_HOST"] == "10.1.2.3"
    assert meta["REMOTE_PORT"] == 43210
    assert meta["SERVER_NAME"] == "127.0.0.1"
    assert meta["SERVER_PORT"] == "8000"
    assert meta["wsgi.multithread"] is True and meta["wsgi.multiprocess"] is True
    assert request.GET.getlist("a") == ["1", "2"]
    assert request.GET["b"] == "é"
    assert request.path == request.path_info == "/meta/"
    assert request.message is message
    assert request.reply_channel.name == "http.response.test?reply"
    assert request.get_host() == "127.0.0.1"


def test_request_without_client_or_server(layer):
    request = AsgiRequest(make_message(layer, client=None, server=None))
    assert request.META["SERVER_NAME"] == "unknown"
    assert request.META["SERVER_PORT"] == "0"
    assert "REMOTE_ADDR" not in request.META


def test_request_headers(layer):
    message = make_message(
        layer,
        "/",
        method="POST",
        headers=[
            (b"x-custom", b"one"),
            (b"x-custom", b"two"),
            (b"content-type", b"text/plain; charset=latin-1"),
            (b"content-length", b"0"),
            (b"x-latin", "caf\u00e9".encode("latin-1")),
            (b"x_forwarded_for", b"6.6.6.6"),
            (b"cookie", b"flavour=chocolate; colour=blue"),
        ],
    )
    request = AsgiRequest(message)
    assert request.META["HTTP_X_CUSTOM"] == "one,two"
    assert request.headers["X-Custom"] == "one,two"
    assert request.META["CONTENT_TYPE"] == "text/plain; charset=latin-1"
    assert request.META["CONTENT_LENGTH"] == "0"
    assert "HTTP_CONTENT_TYPE" not in request.META
    assert request.META["HTTP_X_LATIN"] == "café"
    assert "HTTP_X_FORWARDED_FOR" not in request.META  # names with "_" are dropped
    assert request.content_type == "text/plain"
    assert request.encoding == "latin-1"
    assert request.COOKIES == {"flavour": "chocolate", "colour": "blue"}


def test_request_legacy_dict_headers(layer):
    message = make_message(layer)
    message.content["headers"] = {"x-old": b"style", "host": b"example"}
    request = AsgiRequest(message)
    assert request.META["HTTP_X_OLD"] == "style"
    assert request.META["HTTP_HOST"] == "example"


def test_request_root_path(layer):
    request = AsgiRequest(make_message(layer, "/prefix/echo/", root_path="/prefix"))
    assert request.path == "/prefix/echo/"
    assert request.path_info == "/echo/"
    assert request.META["SCRIPT_NAME"] == "/prefix"
    assert request.META["PATH_INFO"] == "/echo/"
    # Only a whole path segment is a prefix.
    assert AsgiRequest(make_message(layer, "/prefixed/", root_path="/prefix")).path_info == "/prefixed/"
    assert AsgiRequest(make_message(layer, "/prefix", root_path="/prefix")).path_info == "/"


def test_request_scheme(layer):
    assert AsgiRequest(make_message(layer)).is_secure() is False
    secure = AsgiRequest(make_message(layer, scheme="https"))
    assert secure.is_secure() is True
    assert secure.build_absolute_uri("/x") == "https://127.0.0.1/x"
    message = make_message(layer)
    del message.content["scheme"]
    assert AsgiRequest(message).scheme == "http"


def test_request_body_in_message(layer):
    request = AsgiRequest(make_message(layer, method="POST", body=b"hello"))
    assert request.body == b"hello"
    assert request.read() == b"hello"


def test_request_body_from_body_channel_is_read_lazily(layer):
    channel = layer.new_channel("http.request.body?")
    started = time.monotonic()
    request = QuickRequest(make_message(layer, method="POST", body=b"start-", body_channel=channel))
    # Nothing was on the body channel: building the request did not wait for it.
    assert time.monotonic() - started < 0.2
    send_chunks(layer, channel, b"middle-end", size=3)
    assert request.body == b"start-middle-end"
    assert request.body == b"start-middle-end"
    assert layer.receive([channel]) == (None, None)


def test_request_body_large_from_many_chunks(layer):
    channel = layer.new_channel("http.request.body?")
    data = bytes(i % 253 for i in range(1_500_000))
    send_chunks(layer, channel, data[100:])
    request = AsgiRequest(make_message(layer, method="POST", body=data[:100], body_channel=channel))
    assert hashlib.sha1(request.body).hexdigest() == hashlib.sha1(data).hexdigest()


def test_body_stream_read_sizes_and_readline(layer):
    channel = layer.new_channel("http.request.body?")
    send_chunks(layer, channel, b"ne\nline two\nthree", size=4)
    stream = BodyStream(b"li", layer, channel, 1.0)
    assert stream.readline() == b"line\n"
    assert stream.read(3) == b"lin"
    assert stream.readline(2) == b"e "
    assert stream.readline() == b"two\n"
    assert stream.read(100) == b"three"  # up to the end: short only because the body ended
    assert stream.read(10) == b""
    assert stream.readline() == b""
    assert stream.read() == b""


def test_body_stream_read_gathers_exactly(layer):
    channel = layer.new_channel("http.request.body?")
    send_chunks(layer, channel, b"abcdefghij" * 10, size=7)
    stream = BodyStream(b"", layer, channel, 1.0)
    assert stream.read(25) == (b"abcdefghij" * 3)[:25]
    assert stream.read() == (b"abcdefghij" * 10)[25:]


def test_request_body_closed_chunk_aborts(layer):
    channel = layer.new_channel("http.request.body?")
    layer.send(channel, {"content": b"part", "more_content": True})
    layer.send(channel, {"closed": True})
    request = AsgiRequest(make_message(layer, method="POST", body_channel=channel))
    with pytest.raises(RequestAborted):
        request.body  # noqa: B018


def test_request_body_timeout(layer):
    channel = layer.new_channel("http.request.body?")
    layer.send(channel, {"content": b"only the start", "more_content": True})
    request = QuickRequest(make_message(layer, method="POST", body_channel=channel))
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        request.read()
    assert 0.25 <= time.monotonic() - started < 2
    # The error sticks: reading again fails at once instead of waiting again.
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        request.read(10)
    assert time.monotonic() - started < 0.1


def test_request_post_urlencoded_from_body_channel(layer):
    channel = layer.new_channel("http.request.body?")
    send_chunks(layer, channel, b"b=2&a=3", size=2)
    request = AsgiRequest(
        make_message(
            layer,
            method="POST",
            body=b"a=1&",
            body_channel=channel,
            headers=[(b"content-type", b"application/x-www-form-urlencoded")],
        )
    )
    assert request.POST.getlist("a") == ["1", "3"]
    assert request.POST["b"] == "2"
    assert request.FILES == {}


def test_request_multipart_upload_from_body_channel(layer):
    data = bytes(i % 241 for i in range(1_500_000))
    payload, content_type = multipart({"field": "value"}, {"file": ("big.bin", data)})
    channel = layer.new_channel("http.request.body?")
    send_chunks(layer, channel, payload[1000:])
    request = AsgiRequest(
        make_message(
            layer,
            method="POST",
            body=payload[:1000],
            body_channel=channel,
            headers=[(b"content-type", content_type.encode()), (b"content-length", str(len(payload)).encode())],
        )
    )
    assert request.POST["field"] == "value"
    upload = request.FILES["file"]
    assert upload.name == "big.bin"
    assert hashlib.sha1(upload.read()).hexdigest() == hashlib.sha1(data).hexdigest()
    request.close()


def test_request_get_is_a_querydict(layer):
    request = AsgiRequest(make_message(layer, query_string=b"x=1&x=2&y="))
    assert request.GET.getlist("x") == ["1", "2"]
    assert request.GET["y"] == ""
    assert not request.GET._mutable


def test_request_invalid_utf8_query_string(layer):
    with pytest.raises(UnicodeDecodeError):
        AsgiRequest(make_message(layer, query_string=b"a=\xff"))
    replies = run(AsgiHandler(), make_message(layer, "/meta/", query_string=b"a=\xff"))
    assert [r["status"] for r in replies] == [400]


# -- encode_response --------------------------------------------------------------------


def test_encode_small_response():
    response = HttpResponse(b"hello", content_type="text/plain")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2", httponly=True)
    response["X-Mixed-Case"] = "Value"
    (message,) = AsgiHandler.encode_response(response)
    assert message["status"] == 200
    assert message["content"] == b"hello"
    assert message["more_content"] is False
    headers = message["headers"]
    # Tuples, as Channels 1.x's encode_response gave (its tests compare with tuples).
    assert all(type(header) is tuple for header in headers)
    assert all(isinstance(n, bytes) and isinstance(v, bytes) for n, v in headers)
    assert (b"Content-Type", b"text/plain") in headers
    assert (b"X-Mixed-Case", b"Value") in headers
    cookies = [v for n, v in headers if n == b"Set-Cookie"]
    assert len(cookies) == 2
    assert cookies[0] == b"a=1; Path=/"
    assert cookies[1].startswith(b"b=2; HttpOnly")


def test_encode_empty_response():
    (message,) = AsgiHandler.encode_response(HttpResponse(status=204))
    assert message["status"] == 204
    assert message["content"] == b""
    assert message["more_content"] is False


@pytest.mark.parametrize(
    "size, expected", [(CHUNK, [CHUNK]), (CHUNK + 1, [CHUNK, 1]), (1_200_000, [CHUNK, CHUNK, 151_424])]
)
def test_encode_large_response_is_chunked(size, expected):
    data = bytes(i % 256 for i in range(size))
    messages = list(AsgiHandler.encode_response(HttpResponse(data)))
    assert [len(m["content"]) for m in messages] == expected
    assert [m["more_content"] for m in messages] == [True] * (len(expected) - 1) + [False]
    assert "status" in messages[0] and all("status" not in m and "headers" not in m for m in messages[1:])
    assert b"".join(m["content"] for m in messages) == data


def test_encode_streaming_response():
    def parts():
        yield b"first"
        yield b""
        yield b"x" * (CHUNK + 10)
        yield "text"

    messages = list(AsgiHandler.encode_response(StreamingHttpResponse(parts())))
    assert messages[0]["status"] == 200
    assert [m.get("content") for m in messages] == [b"first", b"x" * CHUNK, b"x" * 10, b"text", None]
    assert [m["more_content"] for m in messages] == [True, True, True, True, False]
    assert messages[-1] == {"more_content": False}


def test_encode_empty_streaming_response():
    messages = list(AsgiHandler.encode_response(StreamingHttpResponse(iter(()))))
    assert len(messages) == 1
    assert messages[0]["status"] == 200 and messages[0]["more_content"] is False


def test_chunk_bytes():
    assert list(AsgiHandler.chunk_bytes(b"")) == [(b"", True)]
    assert list(AsgiHandler.chunk_bytes(b"abc")) == [(b"abc", True)]


# -- AsgiHandler ----------------------------------------------------------------------


def test_handler_echoes_body_from_channel(layer):
    channel = layer.new_channel("http.request.body?")
    data = bytes(i % 199 for i in range(700_000))
    send_chunks(layer, channel, data)
    replies = run(AsgiHandler(), make_message(layer, "/body/", method="POST", body_channel=channel))
    assert replies[0]["status"] == 200
    assert json_body(replies) == {"length": len(data), "sha1": hashlib.sha1(data).hexdigest()}


def test_handler_iterates_request_lines(layer):
    channel = layer.new_channel("http.request.body?")
    send_chunks(layer, channel, b"two\nthree", size=2)
    replies = run(AsgiHandler(), make_message(layer, "/lines/", method="POST", body=b"one\n", body_channel=channel))
    assert json_body(replies) == {"lines": ["one\n", "two\n", "three"]}


def test_handler_multipart_upload(layer):
    data = bytes(i % 241 for i in range(1_500_000))
    payload, content_type = multipart({}, {"file": ("up.bin", data)})
    channel = layer.new_channel("http.request.body?")
    send_chunks(layer, channel, payload)
    message = make_message(
        layer,
        "/upload/",
        method="POST",
        body_channel=channel,
        headers=[(b"content-type", content_type.encode()), (b"content-length", str(len(payload)).encode())],
    )
    replies = run(AsgiHandler(), message)
    assert json_body(replies) == {"name": "up.bin", "size": len(data), "sha1": hashlib.sha1(data).hexdigest()}


def test_handler_body_timeout_gives_408(layer):
    channel = layer.new_channel("http.request.body?")
    layer.send(channel, {"content": b"partial", "more_content": True})
    replies = run(QuickHandler(), make_message(layer, "/body/", method="POST", body_channel=channel))
    assert len(replies) == 1
    assert replies[0]["status"] == 408
    assert b"Request Timeout" in replies[0]["content"]


def test_handler_body_timeout_in_csrf_middleware_gives_408(layer):
    """CsrfViewMiddleware reads POST before the view runs: the timeout still becomes a 408."""
    channel = layer.new_channel("http.request.body?")
    message = make_message(
        layer,
        "/protected/",
        method="POST",
        body_channel=channel,
        headers=[(b"content-type", b"application/x-www-form-urlencoded"), (b"cookie", b"csrftoken=" + b"a" * 32)],
    )
    replies = run(QuickHandler(), message)
    assert [r["status"] for r in replies] == [408]


def test_handler_body_error_in_plain_middleware(layer, settings):
    """A middleware's own code (outside the view machinery) reads the body and it fails."""
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.channels_core.urls.SpecialMiddleware"]
    handler = QuickHandler()
    channel = layer.new_channel("http.request.body?")
    replies = run(handler, make_message(layer, "/mw-body/", method="POST", body_channel=channel))
    assert [r["status"] for r in replies] == [408]
    channel = layer.new_channel("http.request.body?")
    layer.send(channel, {"closed": True})
    assert run(handler, make_message(layer, "/mw-body/", method="POST", body_channel=channel)) == []


def test_handler_aborted_body_sends_nothing(layer):
    channel = layer.new_channel("http.request.body?")
    layer.send(channel, {"content": b"partial", "more_content": True})
    layer.send(channel, {"closed": True})
    finished = []

    def on_finished(**kwargs):
        finished.append(kwargs)

    request_finished.connect(on_finished)
    try:
        assert run(AsgiHandler(), make_message(layer, "/body/", method="POST", body_channel=channel)) == []
    finally:
        request_finished.disconnect(on_finished)
    assert len(finished) == 1


def test_handler_view_that_ignores_the_body_does_not_wait(layer):
    channel = layer.new_channel("http.request.body?")
    started = time.monotonic()
    replies = run(QuickHandler(), make_message(layer, "/ignores-body/", method="POST", body_channel=channel))
    assert replies[0]["status"] == 200
    assert time.monotonic() - started < 0.25


def test_handler_response_later_sends_nothing(layer):
    assert run(AsgiHandler(), make_message(layer, "/later/", method="POST")) == []
    assert test_views.STATE["reply_channel"].name == "http.response.test?reply"


def test_handler_response_later_from_middleware(layer, settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.channels_core.urls.SpecialMiddleware"]
    assert run(AsgiHandler(), make_message(layer, "/mw-later/")) == []


def test_handler_view_error_is_500(layer, caplog):
    with caplog.at_level(logging.ERROR, logger="django.request"):
        replies = run(AsgiHandler(), make_message(layer, "/error/"))
    assert [r["status"] for r in replies] == [500]
    assert b"this view always fails" not in replies[0]["content"]
    assert any("Internal Server Error" in r.getMessage() for r in caplog.records)


def test_handler_view_error_in_debug_is_the_debug_page(layer, settings):
    settings.DEBUG = True
    replies = run(AsgiHandler(), make_message(layer, "/error/"))
    assert replies[0]["status"] == 500
    assert b"this view always fails" in b"".join(r.get("content", b"") for r in replies)


def test_handler_404(layer):
    replies = run(AsgiHandler(), make_message(layer, "/nowhere/"))
    assert replies[0]["status"] == 404


def test_handler_root_path_sets_script_prefix(layer):
    replies = run(AsgiHandler(), make_message(layer, "/forum/whereami/", root_path="/forum"))
    assert json_body(replies) == {
        "reverse": "/forum/whereami/",
        "path": "/forum/whereami/",
        "path_info": "/whereami/",
        "script_name": "/forum",
    }


def test_handler_signals(layer):
    started, finished = [], []

    def on_started(sender, **kwargs):
        started.append(kwargs)

    def on_finished(sender, **kwargs):
        finished.append(sender)

    request_started.connect(on_started)
    request_finished.connect(on_finished)
    try:
        message = make_message(layer, "/cookies/")
        run(AsgiHandler(), message)
    finally:
        request_started.disconnect(on_started)
        request_finished.disconnect(on_finished)
    assert len(started) == 1 and started[0]["message"] is message
    assert finished == [AsgiHandler]


def test_handler_cookies_and_header_case(layer):
    (reply,) = run(AsgiHandler(), make_message(layer, "/cookies/"))
    cookies = [v for n, v in reply["headers"] if n == b"Set-Cookie"]
    assert cookies == [b"a=1; Path=/", b"b=2; HttpOnly; Path=/x/"]
    assert (b"X-Mixed-Case", b"Value") in [tuple(header) for header in reply["headers"]]


def test_handler_large_response(layer):
    replies = run(AsgiHandler(), make_message(layer, "/big/", query_string=b"size=1100000"))
    assert [len(r["content"]) for r in replies] == [CHUNK, CHUNK, 1_100_000 - 2 * CHUNK]
    assert b"".join(r["content"] for r in replies) == bytes(i % 256 for i in range(1_100_000))


def test_handler_file_response_chunks_and_closes(layer):
    replies = run(AsgiHandler(), make_message(layer, "/file/", query_string=b"size=1200000"))
    headers = dict((n.lower(), v) for n, v in replies[0]["headers"])
    assert headers[b"content-length"] == b"1200000"
    assert b"data.bin" in headers[b"content-disposition"]
    assert [len(r.get("content", b"")) for r in replies] == [CHUNK, CHUNK, 1_200_000 - 2 * CHUNK, 0]
    assert replies[-1] == {"more_content": False}
    assert b"".join(r.get("content", b"") for r in replies) == bytes(i % 251 for i in range(1_200_000))
    assert test_views.STATE["file_closed"] is True


def test_handler_streaming_response(layer):
    replies = run(AsgiHandler(), make_message(layer, "/stream/"))
    assert [len(r.get("content", b"")) for r in replies] == [5, CHUNK, 700 * 1024 - CHUNK, 4, 0]
    assert [r["more_content"] for r in replies] == [True, True, True, True, False]


# -- ViewConsumer ----------------------------------------------------------------------


def drain(layer, channel, timeout=2.0):
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        name, message = layer.receive([channel], block=False)
        if name is None:
            if out and not out[-1].get("more_content"):
                break
            time.sleep(0.005)
            continue
        out.append(message)
    return out


def test_view_consumer_sends_replies_in_order(layer):
    reply = layer.new_channel("http.response.test?")
    ViewConsumer()(make_message(layer, "/stream/", reply_channel=reply))
    replies = drain(layer, reply)
    assert replies[0]["status"] == 200
    assert b"".join(r.get("content", b"") for r in replies) == b"first" + b"x" * (700 * 1024) + b"last"
    assert replies[-1]["more_content"] is False


def test_view_consumer_shares_one_handler_per_process():
    assert ViewConsumer().handler is ViewConsumer().handler is shared_handler(AsgiHandler)
    assert StaticFilesConsumer().handler is not ViewConsumer().handler


def test_view_consumer_aborted_request_sends_nothing(layer):
    reply = layer.new_channel("http.response.test?")
    body = layer.new_channel("http.request.body?")
    layer.send(body, {"closed": True})
    ViewConsumer()(make_message(layer, "/body/", method="POST", reply_channel=reply, body_channel=body))
    assert layer.receive([reply]) == (None, None)


def test_view_consumer_retries_a_full_reply_channel(layer):
    """The reply channel holds one message; a reader frees space slowly: everything arrives."""
    small = InMemoryChannelLayer(capacity=1, blocking_timeout=0.05)
    reply = small.new_channel("http.response.test?")
    got = []

    def reader():
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            name, message = small.receive([reply], block=True)
            if name is not None:
                got.append(message)
                if not message.get("more_content"):
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    ViewConsumer()(make_message(small, "/stream/", reply_channel=reply))
    thread.join(5)
    assert b"".join(m.get("content", b"") for m in got) == b"first" + b"x" * (700 * 1024) + b"last"


def test_view_consumer_gives_up_on_a_channel_that_stays_full(caplog):
    small = InMemoryChannelLayer(capacity=1, blocking_timeout=0.05)
    reply = small.new_channel("http.response.test?")
    small.send(reply, {"status": 200, "content": b"somebody else's", "more_content": True})

    class QuickConsumer(ViewConsumer):
        send_timeout = 0.3

    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="channels_core.handler"):
        QuickConsumer()(make_message(small, "/file/", query_string=b"size=100", reply_channel=reply))
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2
    assert any("stayed full" in r.getMessage() for r in caplog.records)
    assert test_views.STATE["file_closed"] is True  # the response was closed even so


def test_view_consumer_without_reply_channel(layer, caplog):
    message = make_message(layer, "/cookies/")
    del message.content["reply_channel"]
    message = Message(message.content, "http.request", layer)
    with caplog.at_level(logging.ERROR, logger="channels_core.handler"):
        ViewConsumer()(message)
    assert any("without a reply_channel" in r.getMessage() for r in caplog.records)


# -- static files ----------------------------------------------------------------------


def test_static_files_served_in_debug(layer, settings):
    settings.DEBUG = True
    handler = StaticFilesHandler()
    replies = run(handler, make_message(layer, "/static/app/hello.txt"))
    assert replies[0]["status"] == 200
    assert b"".join(r.get("content", b"") for r in replies) == b"hello static\n"
    assert isinstance(handler, AsgiHandler)
    missing = run(handler, make_message(layer, "/static/app/missing.txt"))
    assert missing[0]["status"] == 404
    # Other paths are views, as usual.
    assert run(handler, make_message(layer, "/cookies/"))[0]["status"] == 200


def test_static_files_not_served_without_debug(layer, settings):
    settings.DEBUG = False
    replies = run(StaticFilesHandler(), make_message(layer, "/static/app/hello.txt"))
    assert replies[0]["status"] == 404


def test_file_response_block_size_is_set(layer):
    captured = {}

    class Spy(AsgiHandler):
        @classmethod
        def encode_response(cls, response):
            captured["block_size"] = getattr(response, "block_size", None)
            captured["type"] = type(response)
            return super().encode_response(response)

    run(Spy(), make_message(layer, "/file/", query_string=b"size=10"))
    assert captured == {"block_size": CHUNK, "type": FileResponse}
