"""Run a real `interface-server` subprocess on a free port and talk to it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """An interface-server subprocess; its combined output is kept in a file for assertions."""

    def __init__(self, layer_path: str, args: list[str] | None = None, env: dict[str, str] | None = None,
                 port: int | None = None, listen: bool = True) -> None:
        self.port = port or free_port()
        self.layer_path = layer_path
        self.args = list(args or [])
        if listen and not any(a in ("-u", "--unix-socket", "-e", "--endpoint", "--fd") for a in self.args):
            self.args = ["-p", str(self.port)] + self.args
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
        self.log = tempfile.NamedTemporaryFile(prefix="interface-server-", suffix=".log", delete=False)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, wait_for: str = "Listening on", pass_fds: tuple[int, ...] = ()) -> ServerProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "interface_server", self.layer_path, *self.args],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, pass_fds=pass_fds,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if wait_for in self.output():
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"interface-server exited with {self.process.returncode}:\n{self.output()}")
            time.sleep(0.02)
        raise RuntimeError(f"interface-server did not start within {START_TIMEOUT}s:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def reply_prefix(self) -> str:
        match = re.search(r"Replies arrive on (\S+!)", self.output())
        assert match, self.output()
        return match.group(1)

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def stop(self) -> None:
        try:
            self.terminate(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        finally:
            self.log.close()
            os.unlink(self.log.name)


def layer_env(prefix: str, **options) -> dict[str, str]:
    """Environment for `tests.interface_server.layers:redis_layer` in the server process."""
    env = {"TEST_LAYER_PREFIX": prefix}
    if options:
        env["TEST_LAYER_OPTIONS"] = json.dumps(options)
    return env
