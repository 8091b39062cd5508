"""Run a real `interface-server` subprocess on a free port and talk to it."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11

from channels_core.test.processes import ChildProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 15.0


class ServerProcess:
    """An interface-server subprocess; its combined output is kept in a file for assertions."""

    def __init__(
        self,
        layer_path: str,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
        listen: bool = True,
    ) -> None:
        self.port = port or free_port()
        self.layer_path = layer_path
        self.args = list(args or [])
        if listen and not any(a in ("-u", "--unix-socket", "-e", "--endpoint", "--fd") for a in self.args):
            self.args = ["-p", str(self.port)] + self.args
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
        self.process: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, wait_for: str = "Listening on", pass_fds: tuple[int, ...] = ()) -> ServerProcess:
        self.process = ChildProcess(
            [sys.executable, "-m", "interface_server", self.layer_path, *self.args],
            label="interface-server",
            cwd=ROOT,
            env=self.env,
            pass_fds=pass_fds,
        )
        self.process.wait_for(wait_for, START_TIMEOUT)
        return self

    def output(self) -> str:
        return self.process.output() if self.process else ""

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
        """SIGTERM and wait; returns the exit code (`subprocess.TimeoutExpired` if it had to be killed)."""
        if self.process is None:
            return 0
        code = self.process.stop(timeout)
        if self.process.killed:
            raise subprocess.TimeoutExpired(self.process.process.args, timeout)
        return code

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=10)
            self.process.close()


def layer_env(prefix: str, **options) -> dict[str, str]:
    """Environment for `tests.interface_server.layers:redis_layer` in the server process."""
    env = {"TEST_LAYER_PREFIX": prefix}
    if options:
        env["TEST_LAYER_OPTIONS"] = json.dumps(options)
    return env


# -- playing the worker and the client -------------------------------------------------


def receive(layer, channels, timeout: float = 5.0) -> tuple[str, dict]:
    """Block until a message arrives on one of `channels` (the layer's own blocking receive gives up sooner)."""
    if isinstance(channels, str):
        channels = [channels]
    deadline = time.monotonic() + timeout
    while True:
        channel, message = layer.receive(channels, block=True)
        if channel is not None:
            return channel, message
        if time.monotonic() >= deadline:
            raise AssertionError(f"no message on {channels} within {timeout}s")


def assert_nothing_on(layer, channels, wait: float = 0.5) -> None:
    """Nothing arrives on `channels` for `wait` seconds."""
    if isinstance(channels, str):
        channels = [channels]
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        channel, message = layer.receive(channels, block=False)
        assert channel is None, f"unexpected message on {channel}: {message!r}"
        time.sleep(0.02)


class EchoWorker(threading.Thread):
    """Answers every `http.request` with 200 and `METHOD path` until stopped."""

    def __init__(self, layer) -> None:
        super().__init__(name="echo-worker", daemon=True)
        self.layer = layer
        self.stopping = threading.Event()
        self.handled = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            channel, message = self.layer.receive(["http.request"], block=True)
            if channel is None:
                continue
            content = f"{message['method']} {message['path']}".encode()
            self.layer.send(message["reply_channel"], {"status": 200, "content": content})
            self.handled += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)

    def __enter__(self) -> EchoWorker:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes


def http_request(
    port: int,
    method: str = "GET",
    path: str = "/",
    body: Any = None,
    headers: dict | None = None,
    timeout: float = 10.0,
    **kwargs,
) -> Reply:
    """One request on a fresh connection with http.client (no exception on 4xx/5xx)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {}, **kwargs)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def raw_exchange(address: Any, data: bytes, timeout: float = 5.0, family: int = socket.AF_INET) -> bytes:
    """Send raw bytes, then read until the server closes the connection."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.sendall(data)
        return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


class ResponseReader:
    """Parses the responses arriving on a raw socket, one after another, with h11."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.conn = h11.Connection(h11.CLIENT)

    def next(self, method: bytes = b"GET") -> tuple[h11.Response, bytes]:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        # Tell h11 which request this response answers (the bytes themselves were sent raw).
        self.conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        self.conn.send(h11.EndOfMessage())
        response = None
        body = b""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return response, body
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed before a complete response")
