"""A `runworker --processes 2` pool on the IPC layer, fed and answered by this (separate) process."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

from channels_core.layers.ipc import IPCChannelLayer
from channels_core.layers.ipc.cleanup import flush_prefix, shared_objects
from channels_core.test.processes import ChildProcess

ROOT = Path(__file__).resolve().parents[2]
ROUTING = """
import os

from routing import route


def work(message, **kwargs):
    import time

    from channels_core.channel import Channel

    time.sleep(0.02)  # so one process cannot take every message before the other runs
    Channel(message.content["reply"]).send({"n": message.content["n"], "pid": os.getpid()})


channel_routing = [route("ipcpool.work", work)]
"""


@pytest.mark.slow
def test_a_worker_pool_on_the_ipc_layer_answers_every_message_from_several_processes(tmp_path):
    prefix = f"t{uuid.uuid4().hex[:12]}"
    (tmp_path / "ipcpool_routing.py").write_text(ROUTING)
    (tmp_path / "ipcpool_settings.py").write_text(
        "from tests.project.settings import *  # noqa\n"
        "CHANNEL_LAYERS = {'default': {'BACKEND': 'channels_core.layers.ipc.IPCChannelLayer',\n"
        f"    'CONFIG': {{'prefix': {prefix!r}, 'capacity': 1000, 'blocking_timeout': 1}},\n"
        "    'ROUTING': 'ipcpool_routing.channel_routing'}}\n"
    )
    env = dict(
        os.environ,
        PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}",
        DJANGO_SETTINGS_MODULE="ipcpool_settings",
        TEST_DB_PATH=str(tmp_path / "unused.sqlite3"),
    )
    worker = ChildProcess(
        [sys.executable, "-m", "django", "runworker", "--processes", "2", "--threads", "2"],
        label="ipc-worker",
        cwd=ROOT,
        env=env,
        log=tmp_path / "worker.log",
    )
    layer = IPCChannelLayer(prefix=prefix, capacity=1000, blocking_timeout=20)
    try:
        worker.wait_for("started worker process", count=2)
        reply = layer.new_channel("ipcpool.reply?")
        for n in range(200):
            layer.send("ipcpool.work", {"reply": reply, "n": n})
        got = []
        while len(got) < 200:
            batch = layer.receive_batch([reply], 100, block=True)
            assert batch, f"{len(got)} of 200 answered; worker log:\n{worker.output()}"
            got += [message for _, message in batch]
        assert sorted(m["n"] for m in got) == list(range(200))
        assert len({m["pid"] for m in got}) == 2, worker.output()
    finally:
        worker.stop()
        worker.close()
        layer.close()
        flush_prefix(prefix)
    assert shared_objects(prefix) == []
