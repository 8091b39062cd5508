"""The whole stack (interface-server + runworker + Django) on the IPC and RabbitMQ layers.

A representative subset of `test_worker_stack.py` (which runs on Redis): both
processes and `manage.py shell` get their layer from `$TEST_LAYER_URL`
(`tests.apps.topology_settings`), under the test's own prefix, removed after.
One set of processes serves several checks. Node ids carry the layer name, so
the RabbitMQ ones join the "rabbitmq" xdist group (tests/conftest.py).
"""

from __future__ import annotations

import os
import re
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.exceptions import InvalidStatus

from channels_core.layers.ipc.cleanup import flush_prefix, shared_objects
from tests.apps.rabbitmq_cleanup import remove_prefix
from tests.interface_server.ws_support import close_code, wait_closed, ws_connect

from .harness import Stack
from .test_worker_stack import echo

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture(params=["ipc", "rabbitmq"])
def stack(request, redis_url, tmp_path):
    name = request.param
    prefix = f"t{uuid.uuid4().hex[:12]}"
    url = f"ipc://{prefix}" if name == "ipc" else RABBITMQ_URL
    env = {"DJANGO_SETTINGS_MODULE": "tests.apps.topology_settings", "TEST_LAYER_URL": url}
    stack = Stack(redis_url, prefix, tmp_path, extra_env=env)
    stack.layer_name = name
    try:
        yield stack
    finally:
        stack.stop()
        if name == "ipc":
            flush_prefix(prefix)
        else:
            remove_prefix(url, prefix)
    if name == "ipc":
        assert shared_objects(prefix) == []


def test_consumers_crash_retry_join_groups_and_a_model_save_broadcasts(stack):
    stack.start_server()
    worker = stack.start_worker()
    backend = {"ipc": "IPCChannelLayer", "rabbitmq": "RabbitMQChannelLayer"}[stack.layer_name]
    assert re.search(rf"Running worker against channel layer default \(\S+\.{backend}\)", stack.worker_output())

    with pytest.raises(InvalidStatus) as info:  # a connect consumer that raises: the handshake is refused
        ws_connect(stack.ws_url + "/special/crash/")
    assert info.value.response.status_code == 403
    with ws_connect(stack.ws_url + "/worker/crash/") as ws:  # a receive consumer that raises: close 1011
        ws.send("boom")
        _, closed = wait_closed(ws, timeout=10)
        assert close_code(closed) == 1011
    with ws_connect(stack.ws_url + "/special/later/") as ws:  # ConsumeLater: the message goes back on the layer
        assert ws.recv(timeout=10) == "after 2 retries"
    with ws_connect(stack.ws_url + "/special/room/abc/") as ws:
        assert ws.recv(timeout=10) == "room abc"

    first, second = ws_connect(stack.ws_url + "/notes/"), ws_connect(stack.ws_url + "/notes/")
    with first, second:
        create = "from tests.project.app.models import Note; Note.objects.create(text='hi')"
        result = stack.manage("shell", "-c", create)
        assert result.returncode == 0, result.stderr
        assert (first.recv(timeout=10), second.recv(timeout=10)) == ("note:hi", "note:hi")
    assert echo(stack, ["still", "here"]) == ["still", "here"]
    assert worker.poll() is None


def test_a_killed_worker_does_not_stop_the_others(stack):
    stack.start_server()
    victim = stack.start_worker()
    survivor = stack.start_worker()
    assert echo(stack, ["warm"]) == ["warm"]
    victim.send_signal(signal.SIGKILL)
    victim.wait(5)
    with ThreadPoolExecutor(4) as pool:
        batches = [[f"m{b}-{i}" for i in range(5)] for b in range(4)]
        results = list(pool.map(lambda texts: echo(stack, texts), batches))
    assert results == batches  # all 20 answered by the survivor
    assert survivor.poll() is None
