"""The worker loop on at-least-once channels: ack when the consumer returns, nack when it raises,
keep long jobs alive, never ack what it did not finish. In-process, on the in-memory layer and on Redis."""

from __future__ import annotations

import threading
import time

import pytest

from channels_core.asgi import ChannelLayerWrapper
from channels_core.exceptions import ConsumeLater
from channels_core.layers import InMemoryChannelLayer, RedisChannelLayer
from channels_core.layers.reliable import DEAD_LETTER_KEY, DELIVERY_KEY
from routing import route
from tests.support.waiting import wait_for
from worker import Worker, WorkerGroup

REDELIVER = 0.4
LONG_REDELIVER = 1.0  # where a stalled heartbeat would fail the test: room for a loaded machine


def settings(redeliver_after: float) -> dict:
    return {"jobs": {"max_deliveries": 3, "dead_letter": "jobs.dead", "redeliver_after": redeliver_after}}


class Runs:
    """What the consumer saw: one entry per run."""

    def __init__(self) -> None:
        self.seen: list[tuple[object, int, object]] = []  # (job, delivery_count, delivery id)
        self.lock = threading.Lock()

    def add(self, message) -> None:
        with self.lock:
            self.seen.append((message["job"], message.delivery_count, message[DELIVERY_KEY]["id"]))

    def jobs(self) -> list:
        with self.lock:
            return [job for job, _, _ in self.seen]


@pytest.fixture(params=["memory", "redis"])
def make(request, redis_url, key_prefix):
    made = []

    def build(consumer, threads: int = 1, prefetch: int = 1, redeliver_after: float = REDELIVER):
        if request.param == "memory":
            raw = InMemoryChannelLayer(blocking_timeout=0.05, at_least_once=settings(redeliver_after))
        else:
            raw = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, at_least_once=settings(redeliver_after))
        layer = ChannelLayerWrapper(raw, "test", [route("jobs", consumer)])
        if threads > 1:
            worker = WorkerGroup(layer, signal_handlers=False, n_threads=threads, prefetch=prefetch)
        else:
            worker = Worker(layer, signal_handlers=False, prefetch=prefetch)
        thread = threading.Thread(target=worker.run, daemon=True)
        made.append((raw, worker, thread))
        thread.start()
        return raw, worker

    yield build
    for raw, worker, thread in made:
        worker.termed = True
        for sub in getattr(worker, "workers", ()):
            sub.termed = True
        thread.join(10)
        assert not thread.is_alive(), "the worker loop did not stop"
        raw.flush()
        raw.close()


def test_a_message_is_acked_as_soon_as_its_consumer_returns(make):
    runs = Runs()
    layer, worker = make(runs.add)
    layer.send("jobs", {"job": 1})
    assert wait_for(lambda: runs.seen, timeout=5)
    job, count, delivery_id = runs.seen[0]
    assert (job, count) == (1, 1)
    # Acked while the worker waits in its next receive, not when that receive returns.
    assert wait_for(lambda: worker.deliveries.acked == 1, timeout=2)
    assert layer.ack("jobs", delivery_id) is False
    time.sleep(REDELIVER * 2 + 0.2)
    assert runs.jobs() == [1]


def test_a_consumer_that_raises_gets_the_message_again_then_it_is_dead_lettered(make):
    runs = Runs()

    def failing(message):
        runs.add(message)
        raise RuntimeError("thumbnailer crashed")

    layer, worker = make(failing)
    layer.send("jobs", {"job": "bad"})
    assert wait_for(lambda: len(runs.seen) == 3, timeout=10)
    assert [count for _, count, _ in runs.seen] == [1, 2, 3]
    got = []
    assert wait_for(lambda: got.append(layer.receive(["jobs.dead"])[1]) or got[-1], timeout=5)
    dead = got[-1]
    assert dead["job"] == "bad"
    assert dead[DEAD_LETTER_KEY] == {"channel": "jobs", "deliveries": 3, "reason": "consumer failed"}
    time.sleep(REDELIVER + 0.2)
    assert len(runs.seen) == 3
    assert worker.deliveries.nacked == 3


def test_a_job_longer_than_redeliver_after_runs_once_while_its_worker_lives(make):
    runs = Runs()

    def slow(message):
        runs.add(message)
        time.sleep(LONG_REDELIVER * 2.5)

    layer, _ = make(slow, threads=2, redeliver_after=LONG_REDELIVER)
    layer.send("jobs", {"job": "long"})
    assert wait_for(lambda: runs.seen, timeout=5)
    time.sleep(LONG_REDELIVER * 3)
    assert runs.jobs() == ["long"]  # the second thread was free all along: no redelivery reached it


def test_consume_later_acks_the_original_and_runs_the_copy(make):
    runs = Runs()

    def later_once(message):
        runs.add(message)
        if "__retries__" not in message.content:
            raise ConsumeLater()

    layer, _ = make(later_once)
    layer.send("jobs", {"job": "x"})
    assert wait_for(lambda: len(runs.seen) == 2, timeout=5)
    first, second = runs.seen
    assert first[1] == 1 and second[1] == 1  # the copy is a new message, not a redelivery
    assert first[2] != second[2]
    time.sleep(REDELIVER * 2 + 0.2)
    assert len(runs.seen) == 2


def test_prefetched_messages_are_kept_alive_until_their_turn(make):
    runs = Runs()

    def slowish(message):
        runs.add(message)
        time.sleep(LONG_REDELIVER * 0.4)

    layer, _ = make(slowish, prefetch=5, redeliver_after=LONG_REDELIVER)
    layer.send_many("jobs", [{"job": i} for i in range(5)])
    # Five jobs of 0.4 s in one batch: the last waits 1.6 s, past redeliver_after, yet runs once.
    assert wait_for(lambda: len(runs.seen) >= 5, timeout=10)
    time.sleep(LONG_REDELIVER * 1.5)
    assert sorted(runs.jobs()) == [0, 1, 2, 3, 4]
    assert {count for _, count, _ in runs.seen} == {1}
