"""Fixtures for tests through the whole stack (interface-server + runworker + Django)."""

from __future__ import annotations

import pytest

from tests.support.browser import Browser

from .harness import Stack


@pytest.fixture
def stack(redis_url, key_prefix, tmp_path):
    """An unstarted stack: call `stack.start_server()` and `stack.start_worker()`."""
    stack = Stack(redis_url, key_prefix, tmp_path)
    yield stack
    stack.stop()


@pytest.fixture
def browser():
    """A headless Chromium (tests/support/browser.py), closed after the test."""
    with Browser() as browser:
        yield browser


@pytest.fixture
def debug_stack(stack):
    """The stack started with DEBUG on, so runworker serves the static files (the bridge)."""
    stack.env["TEST_DEBUG"] = "1"
    stack.start_server()
    stack.start_worker()
    return stack
