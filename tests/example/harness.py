"""The example project run as users run it: the Procfile's processes over a shared layer, or runserver alone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from channels_core.test.processes import ChildProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example"
START_TIMEOUT = 40.0


def procfile(name: str = "Procfile") -> dict[str, str]:
    """A Procfile's process types and their commands."""
    entries = {}
    for line in (ROOT / name).read_text().splitlines():
        match = re.match(r"^([\w-]+):\s*(.+)$", line.strip())
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


class Process(ChildProcess):
    """A command run as a Procfile runner does: through a shell, from the repository root, in its own group."""

    def __init__(self, label: str, command: str, env: dict[str, str], log_dir: Path) -> None:
        super().__init__(
            ["bash", "-c", command], label=label, cwd=ROOT, env=env, log=log_dir / f"{label}.log", own_group=True
        )

    def wait_for(self, text: str, timeout: float = START_TIMEOUT, count: int = 1) -> None:
        super().wait_for(text, timeout, count)


class Example:
    """The example with its own SQLite file and layer prefix."""

    def __init__(self, tmp_path: Path, redis_url: str | None, prefix: str, layer_url: str | None = None) -> None:
        """`layer_url`, when given, is the example's `$CHANNEL_LAYER_URL` (amqp://, ipc://NAME) instead of Redis."""
        self.tmp_path = tmp_path
        self.port = free_port()
        self.env = dict(os.environ, PORT=str(self.port), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
        # As in a fresh shell: not the test process's settings module or the TZ its Django set.
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        self.env.pop("TZ", None)
        self.env["PYTHONPATH"] = str(ROOT)
        self.env.pop("CHANNEL_LAYER_URL", None)  # it would win over REDIS_URL
        if redis_url:
            self.env.update(REDIS_URL=redis_url, CHANNELS_PREFIX=prefix)
        if layer_url:
            self.env.pop("REDIS_URL", None)
            self.env.update(CHANNEL_LAYER_URL=layer_url, CHANNELS_PREFIX=prefix)
        self.processes: dict[str, Process] = {}

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(EXAMPLE / "manage.py"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )

    def start(self, kind: str) -> Process:
        command = procfile()[kind]
        process = Process(f"{kind}-{len(self.processes)}", command, self.env, self.tmp_path)
        self.processes[kind] = process
        process.wait_for("Listening on")
        return process

    def start_procfile(self) -> None:
        self.manage(*procfile()["release"].split()[2:])  # "python example/manage.py migrate --noinput"
        self.start("web")
        self.start("worker")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.status, response.read().decode()

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()
