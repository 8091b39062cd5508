"""`manage.py runserver`: the interface server plus worker threads in one process, on the in-memory layer.

Each test starts `python -m django runserver` as a subprocess against the
test project (with its own copy of a migrated SQLite database) and talks to
it over HTTP and WebSocket.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from channels_core.test.processes import ChildProcess, free_port
from tests.interface_server.harness import ROOT
from tests.stack.harness import template_database
from tests.support.redis_server import RedisServer

BANNER = "Quit the server with"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 8.0


class RunServer:
    """A `manage.py runserver` subprocess; stdout and stderr go to one file for assertions."""

    def __init__(self, tmp_path: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        db_path = tmp_path / "db.sqlite3"
        if not db_path.exists():
            shutil.copy(template_database(), db_path)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "DJANGO_", "RUN_MAIN"))}
        self.env = {
            **base,
            "DJANGO_SETTINGS_MODULE": "tests.project.settings",
            "TEST_INMEMORY": "1",
            "TEST_DB_PATH": str(db_path),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.args = args
        self.log = tmp_path / f"runserver-{self.port}.log"
        self.process: ChildProcess | None = None

    def start(self, wait_for: str | None = BANNER) -> RunServer:
        self.process = ChildProcess(
            [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{self.port}", *self.args],
            label="runserver",
            cwd=ROOT,
            env=self.env,
            log=self.log,
        )
        if wait_for:
            self.wait_for(wait_for)
        return self

    def output(self) -> str:
        return self.process.output()

    def wait_for(self, text: str, count: int = 1, timeout: float = START_TIMEOUT) -> None:
        self.process.wait_for(text, timeout, count)

    def get(self, path: str, timeout: float = 10) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self, signo: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send `signo`; return the exit code (fails if the process outlives `timeout`)."""
        code = self.process.stop(timeout, signo)
        if self.process.killed:
            raise AssertionError(f"runserver did not exit within {timeout}s of signal {signo}:\n{self.output()}")
        return code

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


@pytest.fixture
def runserver(tmp_path):
    """`runserver(*args, env=...)` starts one (not started: `start=False`); all are killed afterwards."""
    started: list[RunServer] = []

    def make(*args: str, env: dict[str, str] | None = None, start: bool = True, wait_for: str | None = BANNER):
        server = RunServer(tmp_path, list(args), env)
        started.append(server)
        return server.start(wait_for) if start else server

    yield make
    for server in started:
        server.kill()


def _settings_module(tmp_path: Path, name: str, body: str) -> str:
    """A settings module in tmp_path (on the subprocess's PYTHONPATH) built on the test project's."""
    (tmp_path / f"{name}.py").write_text(f"from tests.project.settings import *  # noqa\n{body}\n")
    return name


# -- the ASGI server ------------------------------------------------------------------------


def test_serves_views_and_websockets_and_logs_requests(runserver):
    server = runserver("--noreload")
    out = server.output()
    assert f"Starting ASGI/Channels development server at http://127.0.0.1:{server.port}/" in out
    assert "InMemoryChannelLayer), 4 worker threads" in out
    # Each sentence of the banner's warning ends its own line, as in Django's own banner.
    assert (
        "WARNING: This is a development server. Do not use it in a production setting.\n"
        "Use interface-server and runworker processes instead.\n"
    ) in out, out
    assert not re.search(r"[a-z]\.[A-Z]", out.split(BANNER, 1)[1]), out

    assert server.get("/") == (200, b"OK")
    status, body = server.get("/echo/?flavour=mint")
    assert status == 200 and b'"get": {"flavour": "mint"}' in body
    with connect(f"{server.ws_url}/ws/echo/", open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
    # Without DEBUG, STATIC_URL is an ordinary (unrouted) path.
    assert server.get("/static/app/hello.txt")[0] == 404

    server.wait_for("WebSocket DISCONNECT /ws/echo/")
    server.wait_for('"GET /static/app/hello.txt HTTP/1.1" 404')  # logged after its response went out
    out = server.output()
    stamp = r"\[\d\d/[A-Z][a-z]{2}/\d{4} \d\d:\d\d:\d\d\]"
    assert re.search(stamp + r' "GET / HTTP/1\.1" 200 2\n', out), out
    assert re.search(stamp + r' "GET /echo/\?flavour=mint HTTP/1\.1" 200 \d+\n', out), out
    assert re.search(stamp + r' "GET /static/app/hello\.txt HTTP/1\.1" 404 \d+\n', out), out
    assert re.search(stamp + r" WebSocket CONNECT /ws/echo/ \[127\.0\.0\.1:\d+\]\n", out), out
    assert re.search(stamp + r" WebSocket DISCONNECT /ws/echo/ \[127\.0\.0\.1:\d+\]\n", out), out

    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 3
    assert "Traceback" not in server.output()


def test_static_files_in_debug_and_sigint_closes_websockets(runserver):
    server = runserver("--noreload", env={"TEST_DEBUG": "1"})
    assert server.get("/static/app/hello.txt") == (200, b"hello static\n")
    assert server.get("/static/app/missing.txt")[0] == 404
    assert server.get("/") == (200, b"OK")

    with connect(f"{server.ws_url}/ws/echo/", open_timeout=10) as ws:
        ws.send("still there?")
        assert ws.recv(timeout=10) == "still there?"
        server.process.send_signal(signal.SIGINT)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001  # going away
    assert server.process.wait(STOP_TIMEOUT) == 0
    assert "Traceback" not in server.output()


def test_redis_layer(runserver, redis_url, key_prefix):
    server = runserver(
        "--noreload",
        "--threads",
        "2",
        env={"TEST_INMEMORY": "", "TEST_REDIS_URL": redis_url, "TEST_LAYER_PREFIX": key_prefix},
    )
    assert "RedisChannelLayer), 2 worker threads" in server.output()
    assert server.get("/") == (200, b"OK")
    with connect(f"{server.ws_url}/ws/echo/", open_timeout=10) as ws:
        ws.send("over redis")
        assert ws.recv(timeout=10) == "over redis"
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 3


def test_redis_db_index_out_of_range_is_one_line_and_exit_code_1(runserver, tmp_path):
    with RedisServer(extra_args=["--databases", "4"]) as redis_server:
        url = f"redis://127.0.0.1:{redis_server.port}/7"
        server = runserver("--noreload", env={"TEST_INMEMORY": "", "TEST_REDIS_URL": url}, wait_for=None)
        assert server.process.wait(START_TIMEOUT) == 1
    out = server.output()
    assert [line for line in out.splitlines() if "databases" in line] == [
        f"CommandError: CHANNEL_LAYERS['default']['CONFIG'] cannot be used: Redis at 127.0.0.1:{redis_server.port} "
        f"has 4 databases (0-3): db 7 of hosts[0] ({url}) does not exist; use 0-3, or raise `databases` in the "
        "server's redis.conf"
    ], out
    assert BANNER not in out


def test_insecure_serves_static_files_without_debug(runserver):
    server = runserver("--noreload", "--insecure")
    assert server.get("/static/app/hello.txt") == (200, b"hello static\n")
    assert server.stop() == 0


def test_noworker_leaves_requests_to_time_out_after_http_timeout(runserver):
    server = runserver("--noreload", "--noworker", "--http-timeout", "1")
    assert "no worker threads (--noworker)" in server.output()
    started = time.monotonic()
    assert server.get("/")[0] == 503
    assert 0.8 < time.monotonic() - started < 5
    assert server.stop() == 0


def test_port_in_use_is_one_line_and_exit_code_1(runserver):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        server = runserver("--noreload", start=False)
        server.port = sock.getsockname()[1]
        server.start(wait_for=None)
        assert server.process.wait(START_TIMEOUT) == 1
    assert "Error: That port is already in use." in server.output()
    assert "Traceback" not in server.output()


def test_autoreload_restarts_on_a_code_change(runserver, tmp_path):
    settings = _settings_module(tmp_path, "reload_settings", "")
    server = runserver(env={"TEST_DEBUG": "1", "DJANGO_SETTINGS_MODULE": settings})
    assert "Watching for file changes with" in server.output()
    assert server.get("/") == (200, b"OK")

    with connect(f"{server.ws_url}/ws/echo/", open_timeout=10) as ws:
        # Touch until the reloader (which polls about once a second) notices.
        path = tmp_path / f"{settings}.py"
        deadline = time.monotonic() + 15
        while "changed, reloading" not in server.output():
            assert time.monotonic() < deadline, server.output()
            stamp = time.time() + 10 + (deadline - time.monotonic())
            os.utime(path, (stamp, stamp))
            time.sleep(0.3)
        # The old server closed its WebSockets properly on the way out.
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001

    server.wait_for(BANNER, count=2)
    assert server.get("/") == (200, b"OK")
    with connect(f"{server.ws_url}/ws/echo/", open_timeout=10) as ws:
        ws.send("again")
        assert ws.recv(timeout=10) == "again"
    assert server.stop(signal.SIGTERM) == 0


# -- falling back to WSGI -------------------------------------------------------------------


def test_noasgi_runs_djangos_wsgi_server(runserver):
    server = runserver("--noreload", "--noasgi")
    out = server.output()
    assert f"Starting development server at http://127.0.0.1:{server.port}/" in out
    assert "ASGI/Channels" not in out
    assert server.get("/") == (200, b"OK")
    server.wait_for('"GET / HTTP/1.1" 200 2')
    assert server.stop(signal.SIGINT) == 0


def test_without_a_default_layer_falls_back_to_wsgi_with_a_notice(runserver, tmp_path):
    settings = _settings_module(tmp_path, "no_layer_settings", "CHANNEL_LAYERS = {}")
    server = runserver("--noreload", env={"DJANGO_SETTINGS_MODULE": settings})
    out = server.output()
    assert "CHANNEL_LAYERS has no 'default' layer" in out
    assert "Starting development server at" in out
    assert server.get("/") == (200, b"OK")
    assert server.stop(signal.SIGINT) == 0


# -- in process: arguments, the request log format, the INSTALLED_APPS order check -------


def test_bad_arguments_are_command_errors():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--threads"):
        call_command("runserver", "--threads", "0", "--noreload")
    with pytest.raises(CommandError, match="--http-timeout"):
        call_command("runserver", "--http-timeout", "0", "--noreload")


def test_request_logger_lines():
    import logging

    from channels_core.management.commands.runserver import RequestLogger

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    log = logging.getLogger("test.runserver.requests")
    log.propagate = False
    log.addHandler(Keep())
    log.setLevel(logging.INFO)
    request_logger = RequestLogger(log)
    details = {"client": "1.2.3.4:5", "method": "GET", "path": "/a", "size": 12}
    request_logger("http", "complete", {**details, "status": 200, "http_version": "1.1", "query_string": b"x=1"})
    request_logger("http", "complete", {**details, "status": 404})
    request_logger("http", "complete", {**details, "status": 500, "http_version": "1.0"})
    request_logger("websocket", "connected", {"path": "/ws/", "client": "1.2.3.4:5"})
    request_logger("websocket", "rejected", {"path": "/ws/", "client": None})
    request_logger("websocket", "disconnected", {"path": "/ws/", "client": "1.2.3.4:5"})
    request_logger("websocket", "something-new", {"path": "/ws/"})

    assert [r.getMessage() for r in records] == [
        '"GET /a?x=1 HTTP/1.1" 200 12',
        '"GET /a" 404 12',
        '"GET /a HTTP/1.0" 500 12',
        "WebSocket CONNECT /ws/ [1.2.3.4:5]",
        "WebSocket REJECT /ws/ [-]",
        "WebSocket DISCONNECT /ws/ [1.2.3.4:5]",
    ]
    assert [r.levelname for r in records] == ["INFO", "WARNING", "ERROR", "INFO", "WARNING", "INFO"]
    assert [getattr(r, "status_code", None) for r in records] == [200, 404, 500, 101, 403, None]
    assert all(re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4} \d\d:\d\d:\d\d", r.server_time) for r in records)


def test_w001_when_staticfiles_comes_first(settings):
    from django.core import checks

    def w001():
        return [m for m in checks.run_checks(tags=["channels"]) if m.id == "channels_core.W001"]

    assert w001() == []  # the test project lists channels_core first
    apps = list(settings.INSTALLED_APPS)
    apps.remove("channels_core")
    apps.insert(apps.index("django.contrib.staticfiles") + 1, "channels_core")
    settings.INSTALLED_APPS = apps
    [warning] = w001()
    assert "django.contrib.staticfiles" in warning.msg
    assert "before 'django.contrib.staticfiles'" in warning.hint
