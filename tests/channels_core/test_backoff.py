"""`channels_core.layers.backoff`: the delays every retry loop waits, and the synchronous `retry` loop."""

from __future__ import annotations

import time

import pytest

from channels_core.layers.backoff import Backoff, retry


def test_delays_grow_by_the_factor_up_to_the_maximum_and_reset():
    backoff = Backoff(0.05, 0.3)
    assert [backoff.next_delay() for _ in range(5)] == pytest.approx([0.05, 0.1, 0.2, 0.3, 0.3])
    assert backoff.attempts == 5
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.next_delay() == pytest.approx(0.05)


def test_a_factor_of_one_is_a_steady_delay():
    backoff = Backoff(0.05, 0.05)
    assert {backoff.next_delay() for _ in range(4)} == {0.05}


def test_delay_of_an_attempt_is_pure_and_survives_huge_attempt_counts():
    backoff = Backoff(100, 10_000)
    assert [backoff.delay(n) for n in range(4)] == [100, 200, 400, 800]
    assert backoff.delay(10**6) == 10_000
    assert backoff.attempts == 0


def test_jitter_only_shortens_a_delay():
    backoff = Backoff(1.0, 1.0, jitter=0.5)
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    "args",
    [(-1, 1), (2, 1), (0.1, 1, 0.5), (0.1, 1, 2, 1.0)],
)
def test_nonsense_is_refused(args):
    with pytest.raises(ValueError):
        Backoff(*args)


class Flaky:
    def __init__(self, failures: int, error: type[BaseException] = OSError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error("not yet")


def test_retry_calls_until_it_works_sleeping_the_backoff_delays():
    slept: list[float] = []
    call = Flaky(3)
    assert retry(call, OSError, Backoff(0.01, 0.02), sleep=slept.append) is True
    assert call.calls == 4
    assert slept == pytest.approx([0.01, 0.02, 0.02])


def test_retry_gives_up_after_tries_without_a_last_useless_sleep():
    slept: list[float] = []
    call = Flaky(10)
    assert retry(call, OSError, Backoff(0.01, 0.01), tries=3, sleep=slept.append) is False
    assert call.calls == 3
    assert len(slept) == 2


def test_retry_gives_up_at_the_deadline_and_never_sleeps_past_it():
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    call = Flaky(10**6)
    assert retry(call, OSError, Backoff(10.0, 10.0), timeout=0.05, sleep=sleep) is False
    # One sleep, cut to what was left of the timeout, one last call at the deadline, then no more.
    assert call.calls == 2
    assert len(slept) == 1 and slept[0] <= 0.05


def test_retry_lets_other_exceptions_through_at_once():
    call = Flaky(1, error=KeyError)
    with pytest.raises(KeyError):
        retry(call, OSError, Backoff(0.01, 0.01), sleep=lambda s: None)
    assert call.calls == 1
