"""Fixtures for tests through the whole stack (interface-server + runworker + Django)."""

from __future__ import annotations

import pytest

from .harness import Stack


@pytest.fixture
def stack(redis_url, key_prefix, tmp_path):
    """An unstarted stack: call `stack.start_server()` and `stack.start_worker()`."""
    stack = Stack(redis_url, key_prefix, tmp_path)
    yield stack
    stack.stop()
