"""Private Redis servers for tests that kill, restart or shard them."""

from __future__ import annotations

import pytest

from tests.support.redis_server import RedisServer


def _private_server():
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def private_redis():
    """A redis-server of this test's own on a free port, stopped afterwards."""
    yield from _private_server()


@pytest.fixture
def second_private_redis():
    yield from _private_server()
