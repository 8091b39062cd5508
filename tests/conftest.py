"""Shared fixtures: the Redis server the suite talks to, and per-test key prefixes."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.support import alone
from tests.support.netns import NetnsUnavailable, Network
from tests.support.redis_server import private_server

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def key_prefix() -> str:
    """A prefix no other test uses, so flushing it touches nothing else."""
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def private_redis():
    """A redis-server of this test's own on a free port, stopped afterwards."""
    yield from private_server()


@pytest.fixture
def second_private_redis():
    yield from private_server()


# Tests that share one outside resource run on one xdist worker, one after the other
# (`python3 -m pytest -n 2 --dist loadgroup`, the README's command): the RabbitMQ tests share
# the machine's broker (and the restart test, marked `alone` too, stops it).
_SERIAL_GROUPS = {"rabbitmq": "rabbitmq"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for needle, group in _SERIAL_GROUPS.items():
            if needle in item.nodeid:
                item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Under xdist, an `alone` test waits until no other test runs, and none starts until it ends."""
    workerinput = getattr(item.config, "workerinput", None)
    if workerinput is None:
        yield
        return
    directory = alone.lock_dir(workerinput["testrunuid"])
    with alone.held(directory, exclusive=item.get_closest_marker(alone.MARKER) is not None):
        yield


@pytest.fixture
def network():
    """Hosts in network namespaces (tests/support/netns.py), removed after the test.

    Where namespaces cannot be made (no root, no iproute2) the test is skipped,
    except under CI (`CI` set), where that is a failure: CI runs as root.
    """
    try:
        net = Network()
    except NetnsUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"network namespaces unavailable: {exc}")
    try:
        yield net
    finally:
        net.remove()
