"""A private, throw-away `redis-server` process for tests that kill or inspect Redis.

Tests that stop, restart or count the commands of a server must not touch a
shared one; `RedisServer` starts its own on a free 127.0.0.1 port with no
persistence, in a temporary directory it removes again.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from typing import Self

import redis

from channels_core.test.processes import ChildProcess, free_port

START_TIMEOUT = 10.0
STOP_GRACE = 5.0


class RedisServer:
    """One `redis-server` child process; `with RedisServer() as server:` starts and stops it."""

    def __init__(
        self, executable: str = "redis-server", port: int | None = None, extra_args: list[str] | None = None
    ) -> None:
        self.executable = executable
        self.extra_args = list(extra_args or [])
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-test-")
        self.logfile = os.path.join(self.dir, "redis.log")
        self.process: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, **kwargs) -> redis.Redis:
        """A plain redis-py client for this server (close it when done)."""
        kwargs.setdefault("socket_timeout", 5)
        kwargs.setdefault("socket_connect_timeout", 5)
        return redis.Redis(host="127.0.0.1", port=self.port, db=0, **kwargs)

    def start(self) -> None:
        """Start the server and wait (at most 10 s) until it answers PING."""
        if self.running:
            return
        args = [
            self.executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            self.dir,
            "--logfile",
            self.logfile,
            *self.extra_args,
        ]
        self.process = ChildProcess(args, label=f"redis-server-{self.port}")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                output = self.process.output()
                self._reap()
                raise RuntimeError(f"redis-server on port {self.port} exited at start: {output}{self._log_tail()}")
            if self.ping():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"redis-server on port {self.port} did not answer PING within {START_TIMEOUT}s{self._log_tail()}"
                )
            time.sleep(0.02)

    def ping(self) -> bool:
        """True if the server answers PING right now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still running after 5 s; waits for the process."""
        if self.process is None:
            return
        self.process.stop(STOP_GRACE)
        self._reap()

    def kill(self) -> None:
        """SIGKILL: the server vanishes at once, like a crash; waits for the process."""
        if self.process is None:
            return
        self.process.kill()
        self._reap()

    def restart(self) -> None:
        """Stop (if running) and start again on the same port."""
        self.stop()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.start()
                return
            except RuntimeError:
                # The port can stay busy for a moment after the old process exits.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def cleanup(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _reap(self) -> None:
        if self.process is not None:
            self.process.close()
        self.process = None

    def _log_tail(self) -> str:
        try:
            with open(self.logfile, encoding="utf8", errors="replace") as f:
                return "\n--- redis log ---\n" + "".join(f.readlines()[-20:])
        except OSError:
            return ""

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} {'running' if self.running else 'stopped'}>"


def private_server(extra_args: list[str] | None = None):
    """Start a private redis-server (with `extra_args`), yield it, remove it: the body of such a fixture."""
    server = RedisServer(extra_args=extra_args)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
