"""The Redis layer, and the interface server on it, over TLS (`rediss://`) to a private TLS-only `redis-server`.

The test makes its own CA and server certificate; the server has no plain
port (`--port 0`). The layer verifies the server's certificate against the
CA given as `connection_kwargs={"ssl_ca_certs": ...}`, and refuses a
server it cannot verify.
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from websockets.sync.client import connect

from channels_core.layers import RedisChannelLayer
from channels_core.layers.errors import LayerConnectionError
from tests.interface_server.harness import ServerProcess, http_request, layer_env

from .tls import TLSRedisServer, make_ca


def _redis_installed() -> bool:
    # Debian's redis-server is built with TLS; one without it exits at start on --tls-port (the test then fails).
    return shutil.which("redis-server") is not None


pytestmark = pytest.mark.skipif(not _redis_installed(), reason="redis-server not installed")


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    ca = make_ca(tmp_path_factory.mktemp("tls"))
    with TLSRedisServer(ca) as server:
        assert server.plain_text_refused()
        yield server


@pytest.fixture
def tls_layer(tls_redis, key_prefix):
    layer = RedisChannelLayer(
        hosts=[tls_redis.url],
        prefix=key_prefix,
        blocking_timeout=1,
        connection_kwargs={"ssl_ca_certs": tls_redis.ca.ca_file},
    )
    yield layer
    layer.flush()
    layer.close()


def test_send_receive_groups_and_blocking_receive_over_tls(tls_layer, tls_redis, key_prefix):
    layer = tls_layer
    layer.send("tls.ch", {"n": 1, "b": b"\x00\xff"})
    assert layer.receive(["tls.ch"]) == ("tls.ch", {"n": 1, "b": b"\x00\xff"})

    reply = "tls.reply!abc"  # a process channel, as an interface server's replies use
    layer.group_add("tls-group", reply)
    layer.group_add("tls-group", "tls.other")
    layer.send_group("tls-group", {"all": True})
    assert layer.receive(["tls.reply!"]) == (reply, {"all": True})
    assert layer.receive(["tls.other"]) == ("tls.other", {"all": True})
    layer.group_discard("tls-group", "tls.other")
    layer.send_group("tls-group", {"all": 2})
    assert layer.receive(["tls.other"]) == (None, None)

    # A blocking receive is woken by a send from another thread, over TLS.
    got = {}
    reader = threading.Thread(target=lambda: got.setdefault("m", layer.receive(["tls.block"], block=True)))
    reader.start()
    time.sleep(0.2)
    start = time.monotonic()
    RedisChannelLayer(
        hosts=[tls_redis.url], prefix=key_prefix, connection_kwargs={"ssl_ca_certs": tls_redis.ca.ca_file}
    ).send("tls.block", {"woke": True})
    reader.join(5)
    assert got["m"] == ("tls.block", {"woke": True})
    print(f"blocking receive over TLS woke {1000 * (time.monotonic() - start):.1f} ms after the send")

    # The payload really went through the TLS server: its keys carry the layer's prefix.
    client = tls_redis.client()
    try:
        layer.send("tls.seen", {"x": 1})
        assert client.exists(f"{key_prefix}tls.seen")
    finally:
        client.close()


def test_a_server_whose_certificate_cannot_be_verified_is_refused(tls_redis, key_prefix, tmp_path):
    other_ca = make_ca(tmp_path / "other")
    layer = RedisChannelLayer(
        hosts=[tls_redis.url], prefix=key_prefix, connection_kwargs={"ssl_ca_certs": other_ca.ca_file}
    )
    try:
        with pytest.raises(LayerConnectionError) as info:
            layer.send("tls.ch", {"n": 1})
        assert "certificate" in str(info.value).lower() or "ssl" in str(info.value).lower(), info.value
    finally:
        layer.close()


def test_plain_redis_url_to_a_tls_port_fails_cleanly(tls_redis, key_prefix):
    layer = RedisChannelLayer(hosts=[f"redis://127.0.0.1:{tls_redis.port}/0"], prefix=key_prefix)
    try:
        with pytest.raises(LayerConnectionError):
            layer.send("tls.ch", {"n": 1})
    finally:
        layer.close()


def test_interface_server_end_to_end_on_tls_redis(tls_redis, tls_layer, key_prefix):
    """The server reads its replies in a thread (the reactor reader refuses TLS) and serves HTTP and WebSocket."""
    options = {"connection_kwargs": {"ssl_ca_certs": tls_redis.ca.ca_file}}
    env = {"TEST_REDIS_URL": tls_redis.url, **layer_env(key_prefix, **options)}
    server = ServerProcess("tests.interface_server.layers:redis_layer", env=env).start()
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            channel, message = tls_layer.receive(["http.request", "websocket.connect", "websocket.receive"], block=True)
            if channel == "http.request":
                tls_layer.send(
                    message["reply_channel"], {"status": 200, "content": b"over tls " + message["path"].encode()}
                )
            elif channel == "websocket.connect":
                tls_layer.send(message["reply_channel"], {"accept": True})
            elif channel == "websocket.receive":
                tls_layer.send(message["reply_channel"], {"text": "echo " + message["text"]})

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        times = []
        for i in range(50):
            start = time.perf_counter()
            reply = http_request(server.port, "GET", f"/t{i}")
            times.append(time.perf_counter() - start)
            assert (reply.status, reply.body) == (200, f"over tls /t{i}".encode())
        times.sort()
        print(
            f"HTTP through the interface server on TLS Redis: p50 {1000 * times[25]:.1f} ms, "
            f"max {1000 * times[-1]:.1f} ms"
        )
        with connect(f"{server.ws_url}/ws/", open_timeout=10) as ws:
            for i in range(10):
                ws.send(f"m{i}")
                assert ws.recv(timeout=5) == f"echo m{i}"
        output = server.output()
        assert "Reading replies in a thread" in output and "TLS" in output, output
        assert "Traceback" not in output
    finally:
        stop.set()
        thread.join(5)
        server.stop()
