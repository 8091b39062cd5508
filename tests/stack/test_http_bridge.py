"""The HTTP bridge through the real stack: interface-server + runworker processes + Django views.

Most tests share one stack (module scope): a server with --proxy-headers, a
second server with --root-path /prefix on the same layer, and two workers.
Tests that need their own settings (DEBUG) or a single worker start their own.
"""

from __future__ import annotations

import hashlib
import re
import socket
import sqlite3
import time
import uuid
from types import SimpleNamespace

import pytest
import requests

from channels_core.layers import RedisChannelLayer
from tests.conftest import REDIS_URL
from tests.interface_server.harness import ServerProcess

from .harness import Stack

TIMEOUT = 15


def flush_prefix(prefix: str) -> None:
    layer = RedisChannelLayer(hosts=[REDIS_URL], prefix=prefix)
    try:
        layer.flush()
    finally:
        layer.close()


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    stack = Stack(REDIS_URL, prefix, tmp_path_factory.mktemp("bridge"))
    prefixed = None
    try:
        stack.start_server("--proxy-headers")
        stack.start_worker()
        stack.start_worker()
        prefixed = ServerProcess("tests.project.asgi:channel_layer", ["--root-path", "/prefix"], env=stack.env).start()
        yield SimpleNamespace(stack=stack, url=stack.url, prefixed_url=prefixed.url)
    finally:
        if prefixed is not None:
            prefixed.stop()
        stack.stop()
        flush_prefix(prefix)


def get(url, **kwargs):
    return requests.get(url, timeout=TIMEOUT, **kwargs)


def post(url, **kwargs):
    return requests.post(url, timeout=TIMEOUT, **kwargs)


def payload(size: int, seed: int = 251) -> bytes:
    return bytes(i % seed for i in range(size))


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


# -- requests in -----------------------------------------------------------------------


def test_get_with_query_headers_and_cookie(bridge):
    r = get(
        f"{bridge.url}/echo/?a=1&b=caf%C3%A9",
        headers={"X-Custom": "hello", "Cookie": "flavour=vanilla"},
    )
    assert r.status_code == 200
    data = r.json()
    assert data["method"] == "GET"
    assert data["path"] == data["path_info"] == "/echo/"
    assert data["script_name"] == ""
    assert data["get"] == {"a": "1", "b": "café"}
    assert data["header"] == "hello"
    assert data["cookie"] == "vanilla"
    assert data["remote_addr"] == "127.0.0.1"
    assert data["secure"] is False
    assert data["body_length"] == 0


def test_head_and_404(bridge):
    r = requests.head(f"{bridge.url}/", timeout=TIMEOUT)
    assert r.status_code == 200 and r.content == b""
    assert get(f"{bridge.url}/no/such/page/").status_code == 404


def test_post_small_body(bridge):
    body = payload(10_000)
    r = post(f"{bridge.url}/echo/", data=body, headers={"Content-Type": "application/octet-stream"})
    data = r.json()
    assert data["method"] == "POST"
    assert data["content_type"] == "application/octet-stream"
    assert (data["body_length"], data["body_sha1"]) == (len(body), sha1(body))


def test_post_large_body_through_body_channel(bridge):
    """Over the server's 256 KB threshold: the body arrives as chunks on a body channel."""
    body = payload(1_000_000, 253)
    r = post(f"{bridge.url}/echo/", data=body)
    assert r.status_code == 200
    assert (r.json()["body_length"], r.json()["body_sha1"]) == (len(body), sha1(body))


def test_post_chunked_body(bridge):
    """No Content-Length (Transfer-Encoding: chunked): streamed through the body channel too."""
    parts = [payload(100_000, 7 + i) for i in range(6)]
    r = post(f"{bridge.url}/echo/", data=iter(parts))
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    body = b"".join(parts)
    assert (r.json()["body_length"], r.json()["body_sha1"]) == (len(body), sha1(body))


def test_body_over_django_limit_is_400(bridge):
    """DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) still applies to bodies read from the body channel."""
    r = post(f"{bridge.url}/echo/", data=payload(3_000_000))
    assert r.status_code == 400
    assert get(f"{bridge.url}/").text == "OK"


def test_csrf_protected_form(bridge):
    session = requests.Session()
    r = session.get(f"{bridge.url}/form/", timeout=TIMEOUT)
    token = r.text.removeprefix("token:")
    assert r.text.startswith("token:") and token
    assert "csrftoken" in session.cookies
    ok = session.post(f"{bridge.url}/form/", data={"field": "value", "csrfmiddlewaretoken": token}, timeout=TIMEOUT)
    assert (ok.status_code, ok.text) == (200, "posted value")
    refused = session.post(f"{bridge.url}/form/", data={"field": "value"}, timeout=TIMEOUT)
    assert refused.status_code == 403
    no_cookie = post(f"{bridge.url}/form/", data={"field": "value", "csrfmiddlewaretoken": token})
    assert no_cookie.status_code == 403


def test_multipart_upload(bridge):
    data = payload(1_500_000, 241)
    r = post(f"{bridge.url}/upload/", files={"file": ("big.bin", data)}, data={"field": "extra"})
    assert r.status_code == 200
    assert r.json() == {"name": "big.bin", "size": len(data), "sha1": sha1(data), "field": "extra"}


# -- responses out ---------------------------------------------------------------------


def test_cookies_out_and_back_in(bridge):
    session = requests.Session()
    r = session.get(f"{bridge.url}/cookies/", timeout=TIMEOUT)
    assert r.text == "cookies set"
    set_cookies = r.raw.headers.getlist("Set-Cookie")
    assert len(set_cookies) == 2
    assert any(c.startswith("flavour=chocolate") for c in set_cookies)
    assert any(c.startswith("colour=blue") and "HttpOnly" in c for c in set_cookies)
    assert session.get(f"{bridge.url}/echo/", timeout=TIMEOUT).json()["cookie"] == "chocolate"


def test_sessions_and_login(bridge):
    result = bridge.stack.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; User.objects.create_user('alice', password='pw-alice-1')",
    )
    assert result.returncode == 0, result.stderr
    session = requests.Session()
    assert session.get(f"{bridge.url}/whoami/", timeout=TIMEOUT).text == "anonymous 1"
    assert session.get(f"{bridge.url}/whoami/", timeout=TIMEOUT).text == "anonymous 2"
    bad = session.post(f"{bridge.url}/login/", data={"username": "alice", "password": "wrong"}, timeout=TIMEOUT)
    assert bad.status_code == 403
    r = session.post(f"{bridge.url}/login/", data={"username": "alice", "password": "pw-alice-1"}, timeout=TIMEOUT)
    assert r.text == "logged in"
    # Several requests, so both workers serve this session.
    seen = [session.get(f"{bridge.url}/whoami/", timeout=TIMEOUT).text for _ in range(4)]
    assert seen == ["alice 3", "alice 4", "alice 5", "alice 6"]
    other = requests.get(f"{bridge.url}/whoami/", timeout=TIMEOUT)
    assert other.text == "anonymous 1"


def test_redirect(bridge):
    r = get(f"{bridge.url}/redirect/", allow_redirects=False)
    assert r.status_code == 302
    assert r.headers["Location"] == "/echo/?from=redirect"
    followed = get(f"{bridge.url}/redirect/")
    assert followed.status_code == 200 and followed.json()["get"] == {"from": "redirect"}


def test_streaming_response(bridge):
    r = get(f"{bridge.url}/stream/", stream=True)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/plain"
    assert r.raw.read() == b"".join(f"part{i}\n".encode() for i in range(5))


def test_file_response(bridge):
    r = get(f"{bridge.url}/file/?size=1200000")
    assert r.status_code == 200
    assert r.headers["Content-Length"] == "1200000"
    assert "data.bin" in r.headers["Content-Disposition"]
    assert sha1(r.content) == sha1(payload(1_200_000))


def test_large_plain_response(bridge):
    """Past 512 KB a normal response goes out as several messages: the client gets it whole."""
    r = get(f"{bridge.url}/big/?size=1300000")
    assert r.status_code == 200
    assert r.headers["Content-Length"] == "1300000"
    assert sha1(r.content) == sha1(payload(1_300_000, 249))
    small = get(f"{bridge.url}/file/?size=5")
    assert small.content == payload(5)


# -- request context -------------------------------------------------------------------


def test_is_secure_behind_a_proxy(bridge):
    assert get(f"{bridge.url}/secure/").text == "plain"
    assert get(f"{bridge.url}/secure/", headers={"X-Forwarded-Proto": "https"}).text == "secure"
    data = get(f"{bridge.url}/echo/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}).json()
    assert data["secure"] is True
    assert data["remote_addr"] == "203.0.113.9"


def test_root_path(bridge):
    data = get(f"{bridge.prefixed_url}/prefix/echo/?x=1").json()
    assert data["path"] == "/prefix/echo/"
    assert data["path_info"] == "/echo/"
    assert data["script_name"] == "/prefix"
    assert data["get"] == {"x": "1"}
    # reverse() includes the prefix there, and not on the other server.
    assert get(f"{bridge.prefixed_url}/prefix/whereis/").text == "/prefix/whereis/"
    assert get(f"{bridge.url}/whereis/").text == "/whereis/"


# -- failures --------------------------------------------------------------------------


def test_view_error_is_500_and_workers_keep_serving(bridge):
    for _ in range(3):
        r = get(f"{bridge.url}/error/")
        assert r.status_code == 500
        assert "this view always fails" not in r.text  # no traceback without DEBUG
    for _ in range(10):
        assert get(f"{bridge.url}/").text == "OK"
    assert all(worker.poll() is None for worker in bridge.stack.workers)


def test_static_files_not_served_without_debug(bridge):
    assert get(f"{bridge.url}/static/app/hello.txt").status_code == 404


def notes(stack) -> list[str]:
    with sqlite3.connect(stack.db_path, timeout=5) as db:
        return [row[0] for row in db.execute("SELECT text FROM app_note ORDER BY id")]


def abort_then_check(stack, request_bytes: bytes) -> None:
    """Send `request_bytes` (an incomplete request to /notes/add/) and hang up.

    A request already dispatched with a streamed body gets {closed: True} on
    its body channel (the view's read raises RequestAborted); a small chunked
    one is held until its body ends, so it never reaches a worker. Either way
    no note is saved, no response is sent, and the only worker serves the next
    request at once instead of waiting 60 s for the rest of the body. A
    complete request afterwards does save a note (the control).
    """
    stack.start_server()
    stack.start_worker()
    try:
        with socket.create_connection(("127.0.0.1", stack.server.port), timeout=TIMEOUT) as sock:
            sock.sendall(request_bytes)
            time.sleep(0.5)  # the worker is reading the body channel by now
        started = time.monotonic()
        assert get(f"{stack.url}/").text == "OK"
        assert time.monotonic() - started < 5
        assert notes(stack) == []
        assert post(f"{stack.url}/notes/add/", data={"text": "complete"}).text.startswith("note ")
        assert notes(stack) == ["complete"]
        log = stack.worker_output()
        assert "Traceback" not in log and "failed" not in log, log
    finally:
        flush_prefix(stack.env["TEST_LAYER_PREFIX"])


def test_client_abort_mid_body(stack):
    body = b"text=" + b"a" * 300_000
    abort_then_check(
        stack,
        b"POST /notes/add/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 2000000\r\n\r\n" + body,
    )


def test_client_abort_before_any_body(stack):
    abort_then_check(
        stack,
        b"POST /notes/add/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
    )


# -- DEBUG ------------------------------------------------------------------------------


@pytest.fixture
def debug_stack(redis_url, key_prefix, tmp_path):
    stack = Stack(redis_url, key_prefix, tmp_path, extra_env={"TEST_DEBUG": "1"})
    try:
        stack.start_server()
        stack.start_worker()
        yield stack
    finally:
        stack.stop()
        flush_prefix(key_prefix)


def test_debug_static_files_and_error_page(debug_stack):
    url = debug_stack.url
    r = get(f"{url}/static/app/hello.txt")
    assert r.status_code == 200
    assert r.content == b"hello static\n"
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.headers["Content-Length"] == str(len(b"hello static\n"))
    assert "Last-Modified" in r.headers
    missing = get(f"{url}/static/app/missing.txt")
    assert missing.status_code == 404
    assert get(f"{url}/").text == "OK"
    error = get(f"{url}/error/")
    assert error.status_code == 500
    assert "this view always fails" in error.text  # Django's technical 500 page
    assert re.search(r"RuntimeError", error.text)
