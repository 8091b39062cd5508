"""The docs' local Procfile recipe (docs/topics/deploying.md), run with honcho itself: both processes stay up,
serve a page and a chat round trip on the port the docs name, and honcho stops all of them on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from pathlib import Path

from channels_core.test.processes import ChildProcess, alive, child_pids
from tests.interface_server.ws_support import ws_connect

from .harness import ROOT, START_TIMEOUT, free_port, procfile

README_REDIS_URL = "redis://127.0.0.1:6379/0"
STAYS_UP = 5.0  # honcho used to stop everything two seconds after start, when `release` exited


def readme_command() -> str:
    """The honcho command of the shell block of docs/topics/deploying.md, "Locally, with honcho", minus its comment."""
    page = (ROOT / "docs" / "topics" / "deploying.md").read_text()
    section = page.split("### Locally, with honcho", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    commands = [line.split(" #", 1)[0].strip() for block in blocks for line in block.splitlines() if " start" in line]
    assert len(commands) == 1 and "honcho" in commands[0], commands
    return commands[0]


def chat_round_trip(url: str, text: str) -> None:
    with ws_connect(url.replace("http", "ws") + "/ws/chat/honcho/") as ws:
        ws.send(json.dumps({"author": "ada", "text": text}))
        assert json.loads(ws.recv(timeout=10))["text"] == text


def test_readme_honcho_recipe_keeps_web_and_worker_running(tmp_path, private_redis):
    command = readme_command()
    assert README_REDIS_URL in command
    port = free_port()
    env = dict(os.environ, PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    for name in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "CHANNELS_PREFIX", "TZ"):  # as in a fresh shell
        env.pop(name, None)
    # The README's line as typed in a shell, but against this test's own Redis server.
    honcho = ChildProcess(
        ["bash", "-c", command.replace(README_REDIS_URL, private_redis.url)],
        label="honcho",
        cwd=ROOT,
        env=env,
        log=tmp_path / "honcho.log",
    )
    started = time.monotonic()
    descendants: set[int] = set()
    try:
        url = f"http://127.0.0.1:{port}"
        honcho.wait_for(f"Listening on tcp:port={port}:", START_TIMEOUT)
        with urllib.request.urlopen(url + "/", timeout=10) as response:
            assert response.status == 200
        chat_round_trip(url, "first")

        time.sleep(max(0.0, STAYS_UP - (time.monotonic() - started)))
        output = honcho.output()
        assert honcho.alive() and "stopped" not in output and "SIGTERM" not in output, output
        descendants = child_pids(honcho.pid, recursive=True)
        commands = " ".join(Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ") for pid in descendants)
        assert "interface-server" in commands and "runworker" in commands, commands
        chat_round_trip(url, "still up")
        with urllib.request.urlopen(url + "/chat/honcho/", timeout=10) as response:
            assert '"text": "still up"' in response.read().decode()  # the worker stored it

        honcho.send_signal(signal.SIGINT)  # Ctrl-C in the terminal
        honcho.wait(30)
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in descendants) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in descendants if alive(pid)] == [], honcho.output()
    finally:
        if honcho.alive():
            descendants |= child_pids(honcho.pid, recursive=True)
            honcho.stop(timeout=30)
        for pid in descendants:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_procfile_dev_runs_the_procfile_processes_without_release():
    dev, deploy = procfile("Procfile.dev"), procfile()
    assert set(dev) == {"web", "worker"}
    assert dev["worker"] == deploy["worker"]
    migrate, web = dev["web"].split(" && ", 1)
    assert migrate == deploy["release"]
    assert web == deploy["web"].replace("--bind 0.0.0.0", "--bind 127.0.0.1")
