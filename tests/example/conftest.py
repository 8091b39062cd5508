import pytest

from tests.support.browser import Browser
from tests.support.topologies import topology  # noqa: F401 (a fixture)

from .harness import Example


@pytest.fixture
def example(tmp_path, topology, key_prefix):  # noqa: F811 (the fixture imported above)
    """The example served by the Procfile's processes over Redis, on `topology` (`one` unless parametrized).

    The key prefix is the test's own and is flushed from every server of the topology afterwards.
    """
    example = Example(tmp_path, topology.redis_url, key_prefix)
    before = topology.connections_received()
    try:
        example.start_procfile()
        topology.wait_for_connections(before)  # REDIS_URL reached the processes
        yield example
    finally:
        example.stop()
        topology.flush(key_prefix)


@pytest.fixture
def browser():
    with Browser() as browser:
        yield browser
