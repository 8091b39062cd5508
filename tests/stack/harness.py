"""The test project served by real processes: interface-server plus runworker subprocesses over Redis."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from channels_core.test.processes import ChildProcess
from tests.interface_server.harness import ROOT, ServerProcess

SETTINGS = "tests.project.settings"
_template_db: str | None = None


def template_database() -> str:
    """A migrated SQLite file, made once per test session and copied for each test."""
    global _template_db
    if _template_db is None:
        path = os.path.join(tempfile.mkdtemp(prefix="stack-db-"), "template.sqlite3")
        env = dict(os.environ, DJANGO_SETTINGS_MODULE=SETTINGS, TEST_DB_PATH=path, PYTHONPATH=str(ROOT))
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120
        )
        _template_db = path
    return _template_db


class Stack:
    """One project instance: its env (layer prefix, database), its server and its workers."""

    def __init__(self, redis_url: str, prefix: str, tmp_path: Path, extra_env: dict[str, str] | None = None) -> None:
        self.db_path = str(tmp_path / "db.sqlite3")
        shutil.copy(template_database(), self.db_path)
        self.env = {
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "TEST_REDIS_URL": redis_url,
            "TEST_LAYER_PREFIX": prefix,
            "TEST_DB_PATH": self.db_path,
            **(extra_env or {}),
        }
        self.server: ServerProcess | None = None
        self.workers: list[ChildProcess] = []
        self.tmp_path = tmp_path

    # -- processes -------------------------------------------------------------------

    def start_server(self, *args: str) -> ServerProcess:
        self.server = ServerProcess("tests.project.asgi:channel_layer", list(args), env=self.env).start()
        return self.server

    def start_worker(self, *args: str, wait: bool = True) -> ChildProcess:
        """`manage.py runworker ARGS`; waits until it listens (its log says so) unless `wait` is False."""
        process = ChildProcess(
            [sys.executable, "-m", "django", "runworker", *args],
            label="runworker",
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT), **self.env),
            log=self.tmp_path / f"worker-{len(self.workers)}.log",
        )
        self.workers.append(process)
        if wait:
            process.wait_for("Listening on channels", timeout=20)
        return process

    def worker_output(self, index: int = 0) -> str:
        return self.workers[index].output()

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        """Run another management command against this stack's settings and database."""
        return subprocess.run(
            [sys.executable, "-m", "django", *args],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT), **self.env),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def stop(self) -> None:
        for process in self.workers:
            process.send_signal(signal.SIGTERM)  # all at once: each drains its consumers in parallel
        for process in self.workers:
            process.wait_or_kill()
        if self.server is not None:
            self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url
