"""The test project served by real processes: interface-server plus runworker subprocesses over Redis."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
        self.workers: list[subprocess.Popen] = []
        self.worker_logs: list[Path] = []
        self.tmp_path = tmp_path

    # -- processes -------------------------------------------------------------------

    def start_server(self, *args: str) -> ServerProcess:
        self.server = ServerProcess("tests.project.asgi:channel_layer", list(args), env=self.env).start()
        return self.server

    def start_worker(self, *args: str, wait: bool = True) -> subprocess.Popen:
        """`manage.py runworker ARGS`; waits until it listens (its log says so) unless `wait` is False."""
        log = self.tmp_path / f"worker-{len(self.workers)}.log"
        self.worker_logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "runworker", *args],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT), **self.env),
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.workers.append(process)
        if wait:
            deadline = time.monotonic() + 20
            while "Listening on channels" not in log.read_text():
                if process.poll() is not None:
                    raise RuntimeError(f"runworker exited with {process.returncode}:\n{log.read_text()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"runworker did not start:\n{log.read_text()}")
                time.sleep(0.05)
        return process

    def worker_output(self, index: int = 0) -> str:
        return self.worker_logs[index].read_text()

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
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.server is not None:
            self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url
