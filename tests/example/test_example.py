"""The example app as a newcomer meets it: the Procfile's processes over Redis, runserver alone, in a browser."""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from channels_core.layers import RedisChannelLayer
from tests.interface_server.ws_support import ws_connect
from tests.support import topologies

from .harness import EXAMPLE, ROOT, Example, Process, free_port, procfile

ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR", ROOT / "artifacts"))


def test_the_procfile_declares_web_worker_and_release():
    entries = procfile()
    assert set(entries) == {"web", "worker", "release"}
    assert "interface-server example.asgi:channel_layer" in entries["web"] and "$PORT" in entries["web"]
    assert "runworker" in entries["worker"]


def test_procfile_processes_serve_pages_and_chat_over_redis(example):
    assert example.get("/")[0] == 200
    with ws_connect(example.url.replace("http", "ws") + "/ws/chat/lobby/") as ws:
        ws.send(json.dumps({"author": "ada", "text": "hello"}))
        assert json.loads(ws.recv(timeout=10))["text"] == "hello"
    status, page = example.get("/chat/lobby/")
    assert status == 200 and '"text": "hello"' in page  # the history, rendered into the room page
    (started,) = re.findall(r"^(\S+ \S+),\d+ INFO +worker: Running worker", example.processes["worker"].output(), re.M)
    assert_utc_now(datetime.strptime(started, "%Y-%m-%d %H:%M:%S"))  # runworker's log


def test_several_urls_in_redis_url_are_client_side_shards(monkeypatch):
    monkeypatch.setenv("REDIS_URL", " redis://127.0.0.1:6379/0\tredis://127.0.0.1:6379/1 ")
    config = runpy.run_path(str(EXAMPLE / "example" / "settings.py"))["CHANNEL_LAYERS"]["default"]["CONFIG"]
    assert config["hosts"] == ["redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1"]
    layer = RedisChannelLayer(**config)
    try:
        assert len(layer.shards) == 2
    finally:
        layer.close()


@pytest.fixture(scope="module")
def runserver(tmp_path_factory):
    """The example on `manage.py runserver` alone (the quickstart's way), its own SQLite file."""
    tmp_path = tmp_path_factory.mktemp("runserver")
    example = Example(tmp_path, None, "")
    example.manage("migrate", "--noinput")
    server = Process(
        "runserver",
        f"{sys.executable} example/manage.py runserver --noreload 127.0.0.1:{example.port}",
        example.env,
        tmp_path,
    )
    try:
        server.wait_for("Quit the server with CONTROL-C")
        yield example, server
    finally:
        server.stop()


def test_runserver_alone_needs_no_redis(runserver):
    example, server = runserver
    assert "InMemoryChannelLayer" in server.output()
    assert example.get("/liveblog/")[0] == 200
    with ws_connect(example.url.replace("http", "ws") + "/ws/chat/solo/") as ws:
        ws.send(json.dumps({"author": "me", "text": "anyone?"}))
        assert json.loads(ws.recv(timeout=10))["author"] == "me"


def assert_utc_now(stamp: datetime) -> None:
    """A log time read as UTC is now (a Django default of America/Chicago is hours off)."""
    offset = abs(stamp.replace(tzinfo=UTC) - datetime.now(UTC))
    assert offset < timedelta(minutes=5), f"logged {stamp}, UTC is {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"


def test_the_example_logs_in_utc(runserver):
    example, server = runserver
    example.get("/?logged-time")
    server.wait_for('"GET /?logged-time HTTP/1.1" 200')
    (stamp,) = re.findall(r"\[([^]]+)\] \"GET /\?logged-time ", server.output())
    assert_utc_now(datetime.strptime(stamp, "%d/%b/%Y %H:%M:%S"))  # runserver's request log


def test_only_pages_with_a_socket_show_its_state(runserver):
    example, _ = runserver
    status, home = example.get("/")
    assert status == 200 and "Chat rooms" in home
    # The home page's socket only feeds the room counts: no state in the top bar (a banner if it drops)
    assert 'id="status"' not in home and "connecting" not in home
    for path in ("/chat/lobby/", "/liveblog/", "/values/"):
        assert '<span id="status">connecting</span>' in example.get(path)[1], path


def open_room(browser, example, room: str):
    page = browser.page()
    page.goto(f"{example.url}/chat/{room}/")
    page.wait_for("document.getElementById('status').textContent === 'open'")
    return page


def say(page, author: str, text: str) -> None:
    page.evaluate(
        f"document.getElementById('author').value = {json.dumps(author)};"
        f"document.getElementById('text').value = {json.dumps(text)};"
        "document.querySelector('#say button').click()"
    )


def log_has(page, text: str) -> None:
    page.wait_for(f"document.getElementById('log').textContent.includes({json.dumps(text)})")


def chat_in_two_pages(example, browser):
    """Two pages in a room see each other's messages (a group broadcast); a third loads the history."""
    first, second = open_room(browser, example, "lobby"), open_room(browser, example, "lobby")
    say(first, "ada", "hi from the first page")
    log_has(second, "ada: hi from the first page")
    say(second, "bob", "and back")
    log_has(first, "bob: and back")
    later = open_room(browser, example, "lobby")
    log_has(later, "ada: hi from the first page")  # stored in the database, shown on load
    return first


def live_blog_update(example, browser) -> None:
    """A post saved in another process (`manage.py shell`) appears in an open live blog page."""
    page = browser.page()
    page.goto(example.url + "/liveblog/")
    page.wait_for("document.getElementById('status').textContent === 'open'")
    example.manage(
        "shell", "-c", "from chat.models import Post; Post.objects.create(title='Breaking', body='It works')"
    )
    page.wait_for("document.getElementById('posts').textContent.includes('Breaking')")


def data_binding_in_two_pages(example, browser) -> None:
    """A value added in one page and changed in the other shows in both."""
    first, second = browser.page(), browser.page()
    for page in (first, second):
        page.goto(example.url + "/values/")
        page.wait_for("document.getElementById('status').textContent === 'open'")
    first.evaluate("document.getElementById('name').value = 'apples'; document.querySelector('#add button').click()")
    second.wait_for("document.getElementById('values').textContent.includes('apples')")
    second.evaluate("document.querySelector('#values button').click()")
    first.wait_for("document.querySelector('#values .value').textContent === '1'")


def test_two_pages_in_a_room_see_each_other_and_history_loads(example, browser):
    first = chat_in_two_pages(example, browser)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # A background tab may render no frame to capture (a 30 s timeout, seen under load): the first page's
    # tab is behind the two opened after it.
    first.call("Page.bringToFront")
    shot = first.screenshot(ARTIFACTS / "chat.png")
    assert shot.stat().st_size > 5000
    assert first.console_errors() == []


def test_live_blog_updates_when_a_post_is_saved_in_another_process(example, browser):
    live_blog_update(example, browser)


def test_the_page_keeps_working_after_the_interface_server_restarts(example, browser):
    first, second = open_room(browser, example, "restart"), open_room(browser, example, "restart")
    example.processes["web"].stop()
    first.wait_for("document.getElementById('status').textContent === 'reconnecting'")
    example.start("web")
    for page in (first, second):
        page.wait_for("document.getElementById('status').textContent === 'open'", timeout=30)
    say(first, "ada", "still here")
    log_has(second, "ada: still here")


def test_data_binding_page_shows_changes_from_every_page(example, browser):
    data_binding_in_two_pages(example, browser)


@pytest.mark.slow
@pytest.mark.parametrize("topology", topologies.EXTRA_TOPOLOGIES, indirect=True)
def test_chat_live_blog_and_data_binding_pages_on_the_other_topologies(example, browser):
    """The three browser checks above on client-side shards, Sentinel and Cluster: one set of processes for all."""
    first = chat_in_two_pages(example, browser)
    live_blog_update(example, browser)
    data_binding_in_two_pages(example, browser)
    assert first.console_errors() == []


def test_start_script_is_the_quickstart():
    script = (EXAMPLE / "start.sh").read_text()
    assert "pip install" in script and "migrate" in script and "runserver" in script
    assert subprocess.run(["bash", "-n", str(EXAMPLE / "start.sh")]).returncode == 0


def system_python_path() -> str:
    """A PATH whose python3 is the system's (Debian's refuses `pip install` outside a venv), else this one's."""
    system = shutil.which("python3", path="/usr/bin:/bin")
    if system:
        version = subprocess.run([system, "-c", "import sys; print(sys.version_info >= (3, 11))"], capture_output=True)
        if version.stdout.strip() == b"True":
            return "/usr/bin:/bin"
    return f"{Path(sys.executable).parent}:/usr/bin:/bin"


@pytest.mark.slow
def test_start_script_installs_into_a_venv_and_serves_the_example(tmp_path):
    """The quickstart on a fresh shell with the system Python: a venv at $VENV, the project in it, runserver."""
    venv, port = tmp_path / "venv", free_port()
    env = {key: os.environ[key] for key in ("HOME", "LANG", "TMPDIR") if key in os.environ}
    env.update(PATH=system_python_path(), VENV=str(venv), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    script = Process("start", f"bash example/start.sh 127.0.0.1:{port}", env, tmp_path)
    try:
        deadline = time.monotonic() + 300  # creates the venv and installs the project and its dependencies
        while "Quit the server with CONTROL-C" not in script.output():
            assert script.process.poll() is None and time.monotonic() < deadline, script.output()
            time.sleep(0.2)
        # start.sh ends by exec-ing runserver with the venv's Python
        argv0 = Path(f"/proc/{script.process.pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        assert argv0 == str(venv / "bin" / "python"), argv0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.status == 200 and "Chat rooms" in response.read().decode()
    finally:
        script.stop()
    installed = subprocess.run(
        [venv / "bin" / "python", "-c", "import channels_core, django; print(django.get_version())"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert installed.returncode == 0, installed.stderr


def test_a_post_added_in_the_django_admin_appears_in_an_open_live_blog(example, browser):
    """The admin itself served through channels: login form, CSRF, session, redirect, then the add form."""
    example.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; User.objects.create_superuser('admin', 'a@example.com', 'pw')",
    )
    blog = browser.page()
    blog.goto(example.url + "/liveblog/")
    blog.wait_for("document.getElementById('status').textContent === 'open'")
    admin = browser.page()
    admin.goto(example.url + "/admin/login/?next=/admin/chat/post/add/")
    admin.evaluate(
        "document.getElementById('id_username').value = 'admin';"
        "document.getElementById('id_password').value = 'pw';"
        "document.querySelector('#login-form').submit()"
    )
    admin.wait_for("document.getElementById('id_title') !== null", timeout=20)
    admin.evaluate(
        "document.getElementById('id_title').value = 'From the admin';"
        "document.getElementById('id_body').value = 'Saved in a form';"
        "document.querySelector('input[name=_save]').click()"
    )
    blog.wait_for("document.getElementById('posts').textContent.includes('From the admin')", timeout=20)
    admin.wait_for("location.pathname === '/admin/chat/post/'", timeout=20)
