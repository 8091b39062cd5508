"""Replies are read inside the reactor over Redis, in a thread otherwise, and survive Redis outages."""

from __future__ import annotations

import signal
import time

import pytest

from channels_core.layers import RedisChannelLayer

from .harness import EchoWorker, http_request


def serve_until_ok(server, path: str, within: float) -> tuple[int, float]:
    """Send requests until one gets 200 (the server answers 503 while Redis is away)."""
    started = time.monotonic()
    status = None
    while time.monotonic() - started < within:
        try:
            status = http_request(server.port, "GET", path, timeout=5).status
        except OSError:
            status = None
        if status == 200:
            break
        time.sleep(0.2)
    return status, time.monotonic() - started


@pytest.fixture
def private_layer(private_redis, key_prefix):
    layer = RedisChannelLayer(hosts=[private_redis.url], prefix=key_prefix, blocking_timeout=1, capacity=1000)
    yield layer
    layer.close()


def test_replies_are_read_in_the_reactor_with_redis(start_server):
    server = start_server()
    assert "Reading replies in a thread" not in server.output()


def test_in_memory_layer_replies_are_read_in_a_thread(start_server):
    server = start_server(layer_path="tests.interface_server.inmemory_echo:channel_layer")
    assert http_request(server.port, "GET", "/x").body.startswith(b"/x")


def test_reply_reading_comes_back_after_a_redis_restart(start_server, private_redis, private_layer):
    server = start_server(env={"TEST_REDIS_URL": private_redis.url})
    with EchoWorker(private_layer):
        assert http_request(server.port, "GET", "/before").body == b"GET /before"
        private_redis.restart()
        status, took = serve_until_ok(server, "/after", within=15)
    assert status == 200, server.output()
    assert "Traceback" not in server.output(), server.output()
    print(f"served again {took:.2f}s after the restart")


@pytest.mark.slow
def test_an_unanswered_reply_read_is_reconnected(start_server, private_redis, private_layer):
    """Redis frozen (SIGSTOP): the pending read gets no answer; once Redis thaws after the
    watchdog's deadline the server reconnects and serves again."""
    server = start_server(env={"TEST_REDIS_URL": private_redis.url}, layer_options={"blocking_timeout": 1})
    with EchoWorker(private_layer):
        assert http_request(server.port, "GET", "/before").body == b"GET /before"
        private_redis.process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(4.5)  # past the 1 s pop + 2 s allowance
        finally:
            private_redis.process.send_signal(signal.SIGCONT)
        status, _ = serve_until_ok(server, "/after", within=20)
    assert status == 200, server.output()
    assert "No answer from Redis to the reply read" in server.output(), server.output()
