"""The IPC layer under the real processes: an interface-server and a `runworker --processes 2` pool.

No broker: the three processes share the layer through /dev/shm alone. The
interface server is unchanged; it is given the layer object as any other
(`module:attribute`), and reads its replies on its reply-reader thread.
"""

from __future__ import annotations

import os
import sys
import urllib.request
import uuid

import pytest

from channels_core.layers.ipc.cleanup import flush_prefix, shared_objects
from channels_core.test.processes import ChildProcess, free_port
from tests.interface_server.harness import ROOT
from tests.interface_server.ws_support import ws_connect

LAYER_MODULE = """
import os

from channels_core.layers.ipc import IPCChannelLayer

channel_layer = IPCChannelLayer(prefix=os.environ["TEST_IPC_PREFIX"], blocking_timeout=1)
"""
SETTINGS = """
import os

from tests.project.settings import *  # noqa

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_core.layers.ipc.IPCChannelLayer",
        "CONFIG": {"prefix": os.environ["TEST_IPC_PREFIX"], "blocking_timeout": 1},
        "ROUTING": "tests.project.routing.channel_routing",
    },
}
"""


@pytest.mark.slow
def test_http_and_websocket_echo_through_an_interface_server_and_a_worker_pool(tmp_path):
    prefix = f"t{uuid.uuid4().hex[:12]}"
    (tmp_path / "ipcstack_layer.py").write_text(LAYER_MODULE)
    (tmp_path / "ipcstack_settings.py").write_text(SETTINGS)
    env = dict(
        os.environ,
        PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}",
        DJANGO_SETTINGS_MODULE="ipcstack_settings",
        TEST_IPC_PREFIX=prefix,
        TEST_DB_PATH=str(tmp_path / "db.sqlite3"),
    )
    port = free_port()
    processes = []
    try:
        server = ChildProcess(
            [sys.executable, "-m", "interface_server", "ipcstack_layer:channel_layer", "-p", str(port)],
            label="interface-server",
            cwd=ROOT,
            env=env,
        )
        processes.append(server)
        worker = ChildProcess(
            [sys.executable, "-m", "django", "runworker", "--processes", "2"], label="worker", cwd=ROOT, env=env
        )
        processes.append(worker)
        server.wait_for("Listening on", 30)
        worker.wait_for("started worker process", 30, count=2)
        for _ in range(5):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
                assert (response.status, response.read()) == (200, b"OK")
        with ws_connect(f"ws://127.0.0.1:{port}/ws/echo/") as ws:
            for text in ("one", "two", "three"):
                ws.send(text)
                assert ws.recv(timeout=10) == text
        # Replies were read inside the reactor (event_receiver), without a lost read.
        assert "Reading replies in a thread" not in server.output()
        assert "Lost the reply read" not in server.output()
    except Exception:
        for process in processes:
            print(f"--- {process.label}\n{process.output()}")
        raise
    finally:
        for process in processes:
            process.stop()
            process.close()
        flush_prefix(prefix)
    assert shared_objects(prefix) == []
