"""`ChannelLiveServerTestCase`: a real interface server and worker for browser- and client-driven tests.

    class ChatTests(ChannelLiveServerTestCase):
        def test_chat(self):
            ...connect a WebSocket client to self.live_server_ws_url + "/chat/"...

For the test class, one `interface-server` process and `worker_processes`
runworker processes serve the project on a free port. They and the test
share the test database (which must therefore be a file: set
`DATABASES["default"]["TEST"]["NAME"]` for SQLite) and the channel layer
built from `TEST_CONFIG` (the layer must reach other processes: Redis). The
layer is flushed before and after each test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.test import TransactionTestCase

from ..asgi import channel_layers
from ..channel import DEFAULT_CHANNEL_LAYER
from ..layers.contract import supports

START_TIMEOUT = 30.0


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class _Process:
    def __init__(self, label: str, args: list[str]) -> None:
        self.label = label
        self.log = tempfile.NamedTemporaryFile(prefix=f"live-{label}-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "channels_core.test.live_processes", *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)),
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while text not in self.output():
            if self.process.poll() is not None:
                raise RuntimeError(f"the live {self.label} exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the live {self.label} did not start in {START_TIMEOUT}s:\n{self.output()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        os.unlink(self.log.name)


class ChannelLiveServerTestCase(TransactionTestCase):
    """A TransactionTestCase with a live interface server and worker(s) over the `TEST_CONFIG` layer."""

    host = "127.0.0.1"
    channel_layer_alias = DEFAULT_CHANNEL_LAYER
    worker_processes = 1

    @classmethod
    def setUpClass(cls) -> None:
        cls._live_processes: list[_Process] = []
        databases = cls._test_databases()
        layer = channel_layers.make_test_backend(cls.channel_layer_alias)
        if layer.local_only():
            raise ImproperlyConfigured(
                f"ChannelLiveServerTestCase needs a channel layer other processes can reach, not {layer}: "
                f"set CHANNEL_LAYERS[{cls.channel_layer_alias!r}]['BACKEND'] to "
                "'channels_core.layers.RedisChannelLayer' (TEST_CONFIG, or else CONFIG, holds its options)"
            )
        cls._saved_layer = channel_layers.set(cls.channel_layer_alias, layer)
        cls.port = _free_port(cls.host)
        try:
            payload = json.dumps(databases)
            server = _Process("interface-server", ["server", cls.channel_layer_alias, str(cls.port), payload])
            cls._live_processes.append(server)
            for i in range(cls.worker_processes):
                cls._live_processes.append(_Process(f"worker-{i}", ["worker", cls.channel_layer_alias, payload]))
            server.wait_for("Listening on")
            for worker in cls._live_processes[1:]:
                worker.wait_for("Listening on channels")
        except BaseException:
            cls._stop_live()
            raise
        super().setUpClass()

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            super().tearDownClass()
        finally:
            cls._stop_live()

    @classmethod
    def _stop_live(cls) -> None:
        for process in cls._live_processes:
            process.stop()
        cls._live_processes = []
        replaced = channel_layers.set(cls.channel_layer_alias, getattr(cls, "_saved_layer", None))
        if replaced is not None and supports(replaced, "flush"):
            replaced.flush()
            replaced.channel_layer.close()

    @classmethod
    def _test_databases(cls) -> dict[str, str]:
        names = {}
        for alias in connections:
            settings_dict = connections[alias].settings_dict
            name = settings_dict["NAME"]
            if "sqlite3" in settings_dict["ENGINE"] and (name == ":memory:" or "mode=memory" in str(name)):
                raise ImproperlyConfigured(
                    "ChannelLiveServerTestCase cannot share an in-memory SQLite database with the worker "
                    f"processes: set DATABASES[{alias!r}]['TEST']['NAME'] to a file"
                )
            names[alias] = str(name)
        return names

    def __call__(self, result: Any = None) -> Any:
        layer = channel_layers[self.channel_layer_alias]
        layer.flush()
        try:
            return super().__call__(result)
        finally:
            layer.flush()

    @property
    def live_server_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def live_server_ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def live_server_output(self) -> str:
        """What the live processes have logged so far (for assertion messages)."""
        return "\n".join(f"--- {p.label}\n{p.output()}" for p in self._live_processes)
