"""docs/tutorial.md cannot rot: its steps are replayed from `django-admin startproject`, and the result runs.

The replay (tests/docs/tutorial_steps.py) runs the tutorial's commands with the real `django-admin`
and `manage.py` in an empty directory (including its `manage.py test chat`), writes every file as the
page shows it, and must give exactly the files of tutorial/ (the finished project in the
repository). Then the replayed project is run the tutorial's two ways, with the commands of its
`serve` blocks: `manage.py runserver`, and `interface-server` + `runworker` over Redis (with a key
prefix of this test's own); in each, two WebSocket clients in one room get each other's message,
the message is stored, and the room's page shows it with the bridge's script.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import urllib.request
from pathlib import Path

import pytest
import redis
from websockets.sync.client import connect

from channels_core.layers import RedisChannelLayer
from channels_core.test.processes import ChildProcess, free_port
from tests.docs import tutorial_steps

pytestmark = pytest.mark.xdist_group("tutorial")

TIMEOUT = 30.0


def _files(directory: Path) -> set[str]:
    return {
        str(path.relative_to(directory))
        for path in directory.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.name != "db.sqlite3"
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The tutorial replayed in an empty directory: the directory holding its manage.py."""
    return tutorial_steps.replay(tmp_path_factory.mktemp("tutorial"))


def test_the_pages_blocks_are_the_finished_project():
    """Every file the page says to write is tutorial/'s; every edit it makes is in tutorial/'s settings."""
    steps = tutorial_steps.steps()
    actions = {step.action for step in steps}
    assert {"install", "run", "write", "append", "replace-line", "replace-assignment", "serve"} <= actions
    for step in steps:
        if step.action == "write":
            assert (tutorial_steps.FINISHED / step.path).read_text() == step.body, step.path
        elif step.action in ("append", "replace-line", "replace-assignment"):
            assert step.body in (tutorial_steps.FINISHED / step.path).read_text(), (step.action, step.args)


def test_replaying_the_tutorial_gives_tutorial_dir(project: Path):
    """The commands and files of the page, from `django-admin startproject`, give the files of tutorial/."""
    assert _files(project) == _files(tutorial_steps.FINISHED)
    for step in tutorial_steps.steps():
        if step.action == "write":
            assert (project / step.path).read_text() == (tutorial_steps.FINISHED / step.path).read_text()
    assert (project / "db.sqlite3").exists()  # the page's `migrate` ran


def _serve_command(label: str) -> str:
    (step,) = [step for step in tutorial_steps.steps() if step.action == "serve" and step.args == label]
    return step.body


def _start(label: str, command: str, project: Path, env: dict[str, str]) -> ChildProcess:
    return ChildProcess(["bash", "-c", command], label=label, cwd=project, env=env, own_group=True)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def _serves_index(port: int) -> bool:
    try:
        return "Chat rooms" in _get(f"http://127.0.0.1:{port}/")
    except OSError:  # not listening yet (or, over the layer, no worker yet: the server's 503 after its timeout)
        return False


def _chat_exchange(port: int, project: Path, room: str, text: str) -> None:
    """Two sockets in `room`: the one's message reaches both, is stored, and the page shows it."""
    url = f"ws://127.0.0.1:{port}/ws/chat/{room}/"
    with connect(url, open_timeout=10) as alice, connect(url, open_timeout=10) as bob:
        alice.send(json.dumps({"author": "alice", "text": text}))
        for client in (bob, alice):
            received = json.loads(client.recv(timeout=10))
            assert (received["author"], received["text"]) == ("alice", text)
    with sqlite3.connect(project / "db.sqlite3") as db:
        stored = db.execute(
            "SELECT author, text FROM chat_message JOIN chat_room ON chat_room.id = room_id WHERE chat_room.name = ?",
            (room,),
        ).fetchall()
    assert stored == [("alice", text)]
    page = _get(f"http://127.0.0.1:{port}/chat/{room}/")
    assert f"<b>alice</b>: {text}" in page
    assert "/static/channels_core/js/websocketbridge.js" in page
    assert "WebSocketBridge" in _get(f"http://127.0.0.1:{port}/static/channels_core/js/websocketbridge.js")


def test_runserver(project: Path):
    """Step 6: `python manage.py runserver` (on a free port, without the autoreloader's second process)."""
    command = _serve_command("runserver").strip()
    assert command == "python manage.py runserver"
    port = free_port()
    env = tutorial_steps.tool_env()
    with _start("runserver", f"{command} 127.0.0.1:{port} --noreload", project, env) as server:
        server.wait_until(lambda: _serves_index(port), "serve the index", TIMEOUT)
        _chat_exchange(port, project, "runserver-room", "hello from runserver")


def test_interface_server_and_runworker_over_redis(project: Path, redis_url: str, key_prefix: str):
    """Step 7: the `interface-server` and `runworker` blocks, run as written, over Redis under this test's prefix."""
    _run_over_redis(project, tutorial_steps.tool_env(), redis_url, key_prefix, "redis-room")


def _run_over_redis(project: Path, env: dict[str, str], redis_url: str, key_prefix: str, room: str) -> None:
    blocks = server_block, worker_block = _serve_command("interface-server"), _serve_command("runworker")
    assert "export REDIS_URL=redis://127.0.0.1:6379/0" in server_block
    assert "export REDIS_URL=redis://127.0.0.1:6379/0" in worker_block
    assert "interface-server mysite.asgi:channel_layer --port 8000" in server_block
    assert "python manage.py runworker" in worker_block
    port = free_port()
    env = dict(env, CHANNELS_PREFIX=key_prefix)
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix)
    # The blocks' Redis is 127.0.0.1:6379/0, the suite's unless TEST_REDIS_URL names another.
    server_block, worker_block = (block.replace("redis://127.0.0.1:6379/0", redis_url) for block in blocks)
    server = _start("interface-server", server_block.replace("--port 8000", f"--port {port}"), project, env)
    worker = None
    try:
        worker = _start("runworker", worker_block, project, env)
        server.wait_for_port(port, timeout=TIMEOUT)
        worker.wait_until(lambda: _serves_index(port), "serve the index", TIMEOUT)
        _chat_exchange(port, project, room, f"hello over redis in {room}")
        # Both processes really were on Redis, under this test's prefix.
        assert any(key.startswith(key_prefix.encode()) for key in layer_keys(redis_url, key_prefix))
    finally:
        for process in (worker, server):
            if process is not None:
                process.close()
        layer.flush()
        layer.close()
        assert not layer_keys(redis_url, key_prefix)


@pytest.mark.slow
def test_from_a_fresh_clone_in_a_new_virtualenv(tmp_path: Path, redis_url: str, key_prefix: str):
    """The whole page as a newcomer runs it: step 1's install block (the venv in a temporary directory
    instead of the clone's `.venv`), then every step with that venv's tools, then over Redis."""
    (install,) = [step for step in tutorial_steps.steps() if step.action == "install"]
    assert install.body == 'python3 -m venv .venv\nsource .venv/bin/activate\npip install -e ".[speedups]"\n'
    venv = tmp_path / "venv"
    script = "set -e\n" + install.body.replace(".venv", shlex.quote(str(venv))).replace("pip install", "pip install -q")
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    done = subprocess.run(["bash", "-c", script], cwd=tutorial_steps.ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    python = venv / "bin" / "python"
    assert (venv / "bin" / "interface-server").exists() and (venv / "bin" / "django-admin").exists()
    tool_env = tutorial_steps.tool_env(str(python))
    tool_env.pop("PYTHONPATH", None)
    work = tmp_path / "work"
    work.mkdir()
    try:
        project = tutorial_steps.replay(work, tool_env)
        assert _files(project) == _files(tutorial_steps.FINISHED)
        _run_over_redis(project, tool_env, redis_url, key_prefix, "fresh-room")
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # about 100 MB; pytest keeps the last runs' tmp_path


def layer_keys(redis_url: str, prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        return list(client.scan_iter(match=f"{prefix}*"))
    finally:
        client.close()
