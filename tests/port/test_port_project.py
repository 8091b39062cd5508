"""`python -m channels_core.port` on a Channels 1.x project laid out as channels-examples was, end to end.

`project_1x/` is that project as a 1.x user had it (liveblog, multichat and
databinding apps, asgi_redis settings, routing.py, a Procfile running daphne).
The test copies it, ports it with the command a user would type, then runs
`manage.py check` on the result and serves a WebSocket echo (through a Group)
and a data binding create with the ported Procfile's own `web` and `worker`
lines over Redis.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import redis

from channels_core.test.processes import ChildProcess, free_port
from tests.interface_server.ws_support import ws_connect

FIXTURE = Path(__file__).resolve().parent / "project_1x"

# Every line the port may change, as (file, old line, new line); anything else must stay byte for byte.
EXPECTED_CHANGES = {
    ("Procfile", "web: daphne mysite.asgi:channel_layer --port $PORT --bind 0.0.0.0 -v2 --websocket_timeout 3600"),
    ("start.sh", "exec daphne -b 127.0.0.1 -p 8000 mysite.asgi:channel_layer"),
    ("chat/consumers.py", "from channels import Channel"),
    ("chat/consumers.py", "from channels.auth import channel_session_user, channel_session_user_from_http"),
    ("chat/models.py", "from channels import Group"),
    ("chat/routing.py", "from channels.routing import route"),
    ("liveblog/consumers.py", "from channels import Group"),
    ("liveblog/consumers.py", "from channels.handler import AsgiHandler"),
    ("liveblog/models.py", "from channels import Group"),
    ("liveblog/routing.py", "from channels.routing import route"),
    ("mysite/asgi.py", "from channels.asgi import get_channel_layer"),
    ("mysite/consumers.py", "from channels import Group"),
    ("mysite/routing.py", "from channels import include, route"),
    ("mysite/routing.py", "from channels.routing import route_class"),
    ("mysite/settings.py", '    "channels",'),
    ("mysite/settings.py", '        "BACKEND": "asgi_redis.RedisChannelLayer",'),
    (
        "templates/base.html",
        """    <script type="text/javascript" src="{% static 'channels/js/websocketbridge.js' %}"></script>""",
    ),
    ("values/consumers.py", "from channels.generic.websockets import WebsocketDemultiplexer"),
    ("values/models.py", "from channels.binding.websockets import WebsocketBinding"),
}

EXPECTED_NOTES = [
    "liveblog/models.py:13: __unicode__ is Python 2's",
    "mysite/settings.py:37: MIDDLEWARE_CLASSES is ignored",
    "requirements.txt:2: channels: replace by channels-core",
    "requirements.txt:3: daphne: replace by channels-core",
    "requirements.txt:4: asgi_redis: replace by channels-core",
]


def run_port(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "channels_core.port", ".", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def removed_lines(before: dict[str, str], after: dict[str, str]) -> set[tuple[str, str]]:
    removed = set()
    for name, old in before.items():
        for line in difflib.ndiff(old.splitlines(), after[name].splitlines()):
            if line.startswith("- "):
                removed.add((name, line[2:]))
    return removed


def test_port_a_1x_project_then_check_and_serve_it(tmp_path, redis_url, key_prefix):
    project = tmp_path / "project"
    shutil.copytree(FIXTURE, project, ignore=shutil.ignore_patterns("__pycache__"))
    before = snapshot(project)

    # --check: lists what would change, exits 1, changes nothing.
    check = run_port(project, "--check")
    assert check.returncode == 1, check.stderr
    would = sorted(line.removeprefix("would rewrite ") for line in check.stdout.splitlines())
    assert would == sorted({name for name, _ in EXPECTED_CHANGES}), check.stdout
    assert snapshot(project) == before

    # --diff: a patch that, applied to a copy, gives what the in-place run writes.
    diff = run_port(project, "--diff")
    assert diff.returncode == 0 and snapshot(project) == before
    patched = tmp_path / "patched"
    shutil.copytree(project, patched)
    subprocess.run(["patch", "-p1", "-s", "-d", str(patched)], input=diff.stdout, text=True, check=True)

    ported = run_port(project)
    assert ported.returncode == 0, ported.stderr
    after = snapshot(project)
    assert after == snapshot(patched)

    # Exactly the expected lines changed; channel names and strings that merely contain "channels" did not.
    assert removed_lines(before, after) == EXPECTED_CHANGES
    settings = after["mysite/settings.py"]
    for unrelated in (
        'CHAT_NOTICE = "Rooms are channels; see channels.readthedocs.io"',
        'ADMIN_CHANNEL = "channels"',
        'PUSH_CHANNEL = "channels.events"',
        "# http://channels.readthedocs.io/en/latest/topics/channel_layers.html",
    ):
        assert unrelated in settings
    assert 'Channel("chat.receive")' in after["chat/consumers.py"]
    assert "new channels.WebSocketBridge()" in after["templates/base.html"]
    assert settings.index('"channels_core"') < settings.index('"django.contrib.staticfiles"')
    assert after["Procfile"].splitlines()[0] == (
        "web: interface-server mysite.asgi:channel_layer --port $PORT --bind 0.0.0.0 -v2 --websocket-timeout 3600"
    )

    # What is left to do by hand is printed with file:line.
    notes = [line for line in ported.stderr.splitlines() if re.match(r"\S+:\d+: ", line)]
    assert len(notes) == len(EXPECTED_NOTES), ported.stderr
    for note, expected in zip(notes, EXPECTED_NOTES, strict=True):
        assert note.startswith(expected), (note, expected)

    # A second run finds nothing to do.
    assert run_port(project, "--check").returncode == 0

    env = dict(
        os.environ,
        REDIS_URL=redis_url,
        CHANNELS_PREFIX=key_prefix,
        PORT=str(free_port()),
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the project's manage.py and asgi.py set their own
    checked = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "System check identified no issues" in checked.stdout
    # The example apps ship no migrations (as channels-examples' databinding did not at first).
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--run-syncdb", "-v", "0"],
        cwd=project,
        env=env,
        check=True,
        timeout=60,
    )

    # The ported Procfile, run as a Procfile runner would: each line in a shell, with PORT set.
    procfile = dict(line.split(": ", 1) for line in after["Procfile"].splitlines())
    processes = {
        name: ChildProcess(["bash", "-c", "exec " + procfile[name]], label=name, cwd=project, env=env)
        for name in ("worker", "web")
    }
    try:
        processes["worker"].wait_for("Listening on channels", timeout=30)
        processes["web"].wait_for_port(int(env["PORT"]), timeout=30)
        ws = ws_connect(f"ws://127.0.0.1:{env['PORT']}/echo/")
        try:
            ws.send("hello from 1.x")
            assert ws.recv(timeout=10) == "hello from 1.x"
        finally:
            ws.close()
        # The databinding app: a row created through the ported Demultiplexer and Binding comes back to the group.
        ws = ws_connect(f"ws://127.0.0.1:{env['PORT']}/binding/")
        try:
            create = {"action": "create", "data": {"name": "ported", "value": 7}}
            ws.send(json.dumps({"stream": "intval", "payload": create}))
            frame = json.loads(ws.recv(timeout=10))
            assert frame["stream"] == "intval"
            assert (frame["payload"]["action"], frame["payload"]["data"]) == ("create", {"name": "ported", "value": 7})
        finally:
            ws.close()
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            process.close()  # waits (SIGKILL after 15 s) and removes the log
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=key_prefix + "*"))
        if keys:
            client.delete(*keys)
