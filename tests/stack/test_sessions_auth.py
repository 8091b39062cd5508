"""Sessions and auth through the real stack: log in over HTTP, then the WebSocket knows the user.

interface-server + runworker over Redis, the project's SQLite database; the
consumers are tests/project/app/session_consumers.py, routed under /sess.
"""

from __future__ import annotations

import contextlib
import http.client
import sqlite3
import urllib.parse

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.waiting import wait_for

TIMEOUT = 10


def started(stack):
    stack.start_server()
    stack.start_worker()
    return stack


def query(stack, sql, *args):
    with sqlite3.connect(stack.db_path, timeout=5) as db:
        return db.execute(sql, args).fetchall()


def channel_session_rows(stack) -> int:
    return query(stack, "SELECT count(*) FROM django_session WHERE session_key LIKE 'chn%'")[0][0]


def notes(stack) -> list[str]:
    return [row[0] for row in query(stack, "SELECT text FROM app_note ORDER BY id")]


def create_user(stack, name="alice", password="pw-alice-1"):
    result = stack.manage(
        "shell",
        "-c",
        f"from django.contrib.auth.models import User; User.objects.create_user({name!r}, password={password!r})",
    )
    assert result.returncode == 0, result.stderr
    return name, password


def http_call(stack, method, path, body=None, cookie=None):
    conn = http.client.HTTPConnection("127.0.0.1", stack.server.port, timeout=TIMEOUT)
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    if cookie:
        headers["Cookie"] = f"sessionid={cookie}"
    try:
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        return response.status, response.getheader("Set-Cookie") or "", response.read().decode()
    finally:
        conn.close()


def login(stack, name, password) -> str:
    """POST /login/ through the HTTP bridge; returns the sessionid cookie."""
    status, set_cookie, body = http_call(
        stack, "POST", "/login/", urllib.parse.urlencode({"username": name, "password": password})
    )
    assert (status, body) == (200, "logged in"), (status, body)
    for part in set_cookie.replace(",", ";").split(";"):
        key, _, value = part.strip().partition("=")
        if key == "sessionid":
            return value
    raise AssertionError(f"no sessionid cookie in {set_cookie!r}")


def ws(stack, path, session=None, **kwargs):
    headers = {"Cookie": f"csrftoken=x; sessionid={session}"} if session else None
    return connect(stack.ws_url + path, additional_headers=headers, open_timeout=TIMEOUT, **kwargs)


def test_user_logged_in_over_http_is_the_sockets_user_until_disconnect(stack):
    started(stack)
    name, password = create_user(stack)
    session = login(stack, name, password)

    with ws(stack, "/sess/user/", session) as sock:
        assert sock.recv(TIMEOUT) == "hello alice"
        assert channel_session_rows(stack) == 1  # written by the connect consumer
        sock.send("a")
        assert sock.recv(TIMEOUT) == "alice 1 a"  # websocket.receive: user from the channel session
        sock.send("b")
        assert sock.recv(TIMEOUT) == "alice 2 b"
    # The disconnect consumer saw the user and the count, then the channel session was deleted.
    assert wait_for(lambda: "bye alice 2" in notes(stack), TIMEOUT), (notes(stack), stack.worker_output())
    assert wait_for(lambda: channel_session_rows(stack) == 0, TIMEOUT)
    # The browser's own session is untouched.
    assert query(stack, "SELECT count(*) FROM django_session WHERE session_key = ?", session)[0][0] == 1

    # session_key GET parameter instead of the cookie; no session at all -> anonymous
    with connect(f"{stack.ws_url}/sess/user/?session_key={session}", open_timeout=TIMEOUT) as sock:
        assert sock.recv(TIMEOUT) == "hello alice"
    with ws(stack, "/sess/user/") as sock:
        assert sock.recv(TIMEOUT) == "hello anonymous"
        sock.send("x")
        assert sock.recv(TIMEOUT) == "anonymous 1 x"
    assert wait_for(lambda: "bye anonymous 1" in notes(stack), TIMEOUT), notes(stack)
    assert wait_for(lambda: channel_session_rows(stack) == 0, TIMEOUT)
    assert "Traceback" not in stack.worker_output(), stack.worker_output()


def test_sockets_that_never_touch_their_session_leave_no_rows_and_http_session_is_rehydrated(stack):
    started(stack)
    name, password = create_user(stack)
    session = login(stack, name, password)

    with contextlib.ExitStack() as sockets:
        socks = [sockets.enter_context(ws(stack, "/sess/plain/", session)) for _ in range(5)]
        for i, sock in enumerate(socks):
            sock.send(str(i))
            assert sock.recv(TIMEOUT) == f"plain {i}"
        assert channel_session_rows(stack) == 0

    assert http_call(stack, "GET", "/whoami/", cookie=session)[2] == "alice 1"
    with ws(stack, "/sess/both/", session) as sock:
        assert sock.recv(TIMEOUT) == "both alice"
        sock.send("?")
        # websocket.receive carries no cookie: the HTTP session comes back from the key in the channel session
        assert sock.recv(TIMEOUT) == "both alice visits=1"
        assert http_call(stack, "GET", "/whoami/", cookie=session)[2] == "alice 2"
        sock.send("?")
        assert sock.recv(TIMEOUT) == "both alice visits=2"
    assert wait_for(lambda: "both bye alice" in notes(stack), TIMEOUT), notes(stack)
    assert wait_for(lambda: channel_session_rows(stack) == 0, TIMEOUT)
    assert "Traceback" not in stack.worker_output(), stack.worker_output()


def test_allowed_hosts_only(stack):
    started(stack)
    for origin in ("http://localhost:8000", "http://127.0.0.1"):
        with ws(stack, "/sess/origin/", origin=origin) as sock:
            assert sock.recv(TIMEOUT) == "origin ok"
    for origin in ("http://evil.example", "http://localhost.evil.example", None):
        with pytest.raises(InvalidStatus) as info:
            ws(stack, "/sess/origin/", origin=origin)
        assert info.value.response.status_code == 403, origin
