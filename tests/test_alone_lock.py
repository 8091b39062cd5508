"""The lock that lets `alone` tests run by themselves under pytest-xdist (tests/support/alone.py)."""

from __future__ import annotations

import threading
import time

from tests.support import alone


def _enter_later(directory: str, exclusive: bool, entered: list[str], name: str) -> threading.Thread:
    def run():
        with alone.held(directory, exclusive):
            entered.append(name)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_an_alone_test_waits_for_running_tests_and_later_ones_wait_for_it(tmp_path):
    directory = str(tmp_path)
    entered: list[str] = []
    with alone.held(directory, exclusive=False):
        writer = _enter_later(directory, True, entered, "alone")
        time.sleep(0.2)
        assert entered == []  # a test is running: the alone one waits
        reader = _enter_later(directory, False, entered, "later")
        time.sleep(0.2)
        assert entered == []  # the later test queues behind the waiting alone test
    writer.join(5)
    reader.join(5)
    assert entered == ["alone", "later"]


def test_ordinary_tests_run_side_by_side(tmp_path):
    directory = str(tmp_path)
    entered: list[str] = []
    with alone.held(directory, exclusive=False):
        other = _enter_later(directory, False, entered, "other")
        other.join(5)
        assert entered == ["other"]
