"""The interface server on the IPC and RabbitMQ layers: a representative subset of the Redis-layer tests.

The other files of this directory run the server on Redis (every behaviour);
here one server per layer (module scope, so two starts in all) serves an HTTP
round trip, WebSocket echo and close codes, a group broadcast and concurrent
clients, with the test playing the worker on the same layer. The layer is not
flushed between tests: each test tells its own messages apart by reply channel
(and consumes what it causes). Node ids carry the layer name, so the
RabbitMQ ones join the "rabbitmq" xdist group (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from channels_core.layers.ipc.cleanup import flush_prefix, shared_objects
from channels_core.layers.layer_url import from_url
from tests.apps.rabbitmq_cleanup import remove_prefix

from .harness import EchoWorker, ServerProcess, http_request
from .ws_support import Worker, connect_in_background, receive, send_retry, ws_connect

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
OPTIONS = {"blocking_timeout": 1, "capacity": 1000}


@dataclass
class Served:
    name: str
    server: ServerProcess
    layer: object
    """The worker's side: the same layer as the server's."""


@pytest.fixture(scope="module", params=["ipc", "rabbitmq"])
def served(request):
    name = request.param
    prefix = f"t{uuid.uuid4().hex[:12]}"
    url = f"ipc://{prefix}" if name == "ipc" else RABBITMQ_URL
    env = {"TEST_MATRIX_URL": url, "TEST_MATRIX_PREFIX": prefix, "TEST_MATRIX_OPTIONS": json.dumps(OPTIONS)}
    layer = from_url(url, prefix=prefix, **OPTIONS)
    server = ServerProcess("tests.interface_server.matrix_layers:channel_layer", env=env)
    try:
        server.start()
        yield Served(name, server, layer)
    finally:
        server.stop()
        layer.flush()
        layer.close()
        if name == "ipc":
            flush_prefix(prefix)  # what the server process left (its bells), once it has stopped
        else:
            remove_prefix(url, prefix)  # and what the registry missed, if anything
    if name == "ipc":
        assert shared_objects(prefix) == []


def test_http_round_trip(served):
    with EchoWorker(served.layer) as worker:
        for path in ("/a", "/b?x=1"):
            reply = http_request(served.server.port, "GET", path)
            assert (reply.status, reply.body) == (200, f"GET {path.split('?')[0]}".encode())
        body = b"x" * 300_000  # several chunks of the request body
        posted = http_request(served.server.port, "POST", "/upload", body=body)
        assert (posted.status, posted.body) == (200, b"POST /upload")
    assert worker.handled == 3
    if served.name == "ipc":  # the IPC layer offers event_receiver: replies are read inside the reactor
        assert "Reading replies in a thread" not in served.server.output()


def test_websocket_echo_in_order_and_the_disconnect_with_its_code(served):
    with Worker(served.layer) as worker:
        with ws_connect(served.server.ws_url + "/echo/") as ws:
            for text in ("one", "two ✓", "three"):
                ws.send(text)
            ws.send(b"\x00\xff")
            assert [ws.recv(timeout=10) for _ in range(4)] == ["one", "two ✓", "three", b"\x00\xff"]
            ws.close(code=4321)
        reply_channel = worker.connects[-1]["reply_channel"]
        deadline = time.monotonic() + 10
        while not any(d["reply_channel"] == reply_channel for d in worker.disconnects):
            assert time.monotonic() < deadline, "no websocket.disconnect"
            time.sleep(0.02)
    (disconnect,) = [d for d in worker.disconnects if d["reply_channel"] == reply_channel]
    assert (disconnect["code"], disconnect["order"], disconnect["path"]) == (4321, 5, "/echo/")
    mine = [m["order"] for m in worker.receives if m["reply_channel"] == reply_channel]
    assert mine == [1, 2, 3, 4]


def test_group_broadcast_reaches_every_member_until_it_leaves(served):
    layer, group = served.layer, f"room-{uuid.uuid4().hex[:8]}"
    clients, channels = [], []
    try:
        for _ in range(3):
            future = connect_in_background(served.server.ws_url + "/room/")
            message = receive(layer, "websocket.connect", timeout=10)
            layer.group_add(group, message["reply_channel"])
            send_retry(layer, message["reply_channel"], {"accept": True})
            clients.append(future.result(10))
            channels.append(message["reply_channel"])
        layer.send_group(group, {"text": "to all"})
        assert [ws.recv(timeout=10) for ws in clients] == ["to all"] * 3
        layer.group_discard(group, channels[0])
        layer.send_group(group, {"text": "to two"})
        assert [ws.recv(timeout=10) for ws in clients[1:]] == ["to two"] * 2
        with pytest.raises(TimeoutError):
            clients[0].recv(timeout=0.5)  # it left the group
    finally:
        for ws in clients:
            ws.close()
        for channel in channels:
            layer.group_discard(group, channel)
        # The three disconnects: not this test's subject, but no later test should read them.
        for _ in channels:
            receive(layer, "websocket.disconnect", timeout=10)


def test_concurrent_clients_get_every_echo_in_order(served):
    clients, messages = 10, 10

    def client(index: int) -> list[str]:
        with ws_connect(served.server.ws_url + f"/echo/{index}") as ws:
            for j in range(messages):
                ws.send(f"client {index} message {j}")
            return [ws.recv(timeout=15) for _ in range(messages)]

    with Worker(served.layer), ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    for index, got in enumerate(results):
        assert got == [f"client {index} message {j}" for j in range(messages)]
