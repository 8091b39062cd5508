import pytest

from tests.support.browser import Browser

from .harness import Example


@pytest.fixture
def example(tmp_path, redis_url, key_prefix):
    """The example served by the Procfile's processes over Redis."""
    example = Example(tmp_path, redis_url, key_prefix)
    example.start_procfile()
    yield example
    example.stop()


@pytest.fixture
def browser():
    with Browser() as browser:
        yield browser
