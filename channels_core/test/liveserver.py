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
import sys
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.test import TransactionTestCase

from .. import DEFAULT_CHANNEL_LAYER
from ..asgi import channel_layers
from ..layers.contract import supports
from .processes import ChildProcess, free_port

START_TIMEOUT = 30.0


def _start(label: str, args: list[str]) -> ChildProcess:
    return ChildProcess(
        [sys.executable, "-m", "channels_core.test.live_processes", *args],
        label=f"live-{label}",
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)),
    )


class ChannelLiveServerTestCase(TransactionTestCase):
    """A TransactionTestCase with a live interface server and worker(s) over the `TEST_CONFIG` layer."""

    host = "127.0.0.1"
    channel_layer_alias = DEFAULT_CHANNEL_LAYER
    worker_processes = 1

    @classmethod
    def setUpClass(cls) -> None:
        cls._live_processes: list[ChildProcess] = []
        databases = cls._test_databases()
        layer = channel_layers.make_test_backend(cls.channel_layer_alias)
        if layer.local_only():
            raise ImproperlyConfigured(
                f"ChannelLiveServerTestCase needs a channel layer other processes can reach, not {layer}: "
                f"set CHANNEL_LAYERS[{cls.channel_layer_alias!r}]['BACKEND'] to "
                "'channels_core.layers.RedisChannelLayer' (TEST_CONFIG, or else CONFIG, holds its options)"
            )
        cls._saved_layer = channel_layers.set(cls.channel_layer_alias, layer)
        cls.port = free_port(cls.host)
        try:
            payload = json.dumps(databases)
            server = _start("interface-server", ["server", cls.channel_layer_alias, str(cls.port), payload])
            cls._live_processes.append(server)
            for i in range(cls.worker_processes):
                cls._live_processes.append(_start(f"worker-{i}", ["worker", cls.channel_layer_alias, payload]))
            server.wait_for("Listening on", START_TIMEOUT)
            for worker in cls._live_processes[1:]:
                worker.wait_for("Listening on channels", START_TIMEOUT)
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
            process.close()
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
        return "\n".join(f"--- {p.label.removeprefix('live-')}\n{p.output()}" for p in self._live_processes)
