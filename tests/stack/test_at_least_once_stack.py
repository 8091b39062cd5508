"""At-least-once background work through real processes: a thumbnail job queue whose runworkers are
SIGKILLed, 100 times, while they render. No job is lost; every job finishes at least once; the
duplicates (jobs run again because their worker died mid-run) are counted and printed.

Consumers: tests/stack/alo_consumers.py; settings: tests/stack/alo_settings.py (`thumbnails` is
at-least-once, redeliver_after 2 s). Run with `-s` to see the figures.
"""

from __future__ import annotations

import random
import signal
import time

import pytest
import redis

from channels_core.layers import RedisChannelLayer

from .alo_consumers import key
from .harness import Stack

WORKERS = 4
KILLS = 100
WAITING = 24  # jobs kept queued while the killing goes on
DRAIN_TIMEOUT = 60.0


@pytest.fixture
def alo_stack(redis_url, key_prefix, tmp_path):
    stack = Stack(redis_url, key_prefix, tmp_path, extra_env={"DJANGO_SETTINGS_MODULE": "tests.stack.alo_settings"})
    yield stack
    for process in stack.workers:
        if process.alive():
            process.kill()
    store = redis.Redis.from_url(redis_url)
    keys = list(store.scan_iter(match=key_prefix + "*", count=1000))
    if keys:
        store.delete(*keys)


@pytest.mark.slow  # not `alone`: it asserts no timing, only that nothing is lost, so a busy machine only slows it
@pytest.mark.timeout(600)
def test_thumbnail_jobs_survive_100_worker_sigkills(alo_stack, redis_url, key_prefix):
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, capacity=10_000, at_least_once={"thumbnails": {}})
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    rng = random.Random(18)
    sent = 0

    def top_up() -> None:
        nonlocal sent
        waiting = int(layer.channel_statistics("thumbnails")["messages_pending"])
        for _ in range(max(0, WAITING - waiting)):
            layer.send("thumbnails", {"job": sent, "seconds": rng.uniform(0.1, 0.4)})
            sent += 1

    started = time.monotonic()
    top_up()
    live = {}
    for _ in range(WORKERS):
        process = alo_stack.start_worker("--threads", "2", wait=False)
        live[process.pid] = process
    kills = mid_job = 0
    deadline = time.monotonic() + 400
    while kills < KILLS:
        assert time.monotonic() < deadline, f"only {kills} kills in 400 s: {alo_stack.workers[0].output()[-2000:]}"
        top_up()
        running = store.hgetall(key("running", key_prefix))
        victims = [int(field.split(".")[0]) for field in running if int(field.split(".")[0]) in live]
        if not victims:
            time.sleep(0.02)
            continue
        victim = live.pop(rng.choice(victims))
        busy = store.hgetall(key("running", key_prefix))  # what it is rendering the moment it dies
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        kills += 1
        mid_job += any(field.split(".")[0] == str(victim.pid) for field in busy)
        for field in [f for f in busy if f.split(".")[0] == str(victim.pid)]:
            store.hdel(key("running", key_prefix), field)  # its threads will never clear their entries
        process = alo_stack.start_worker("--threads", "2", wait=False)
        live[process.pid] = process
        time.sleep(rng.uniform(0.05, 0.25))
    killing = time.monotonic() - started

    # No more kills and no more jobs: everything sent must finish.
    drain_deadline = time.monotonic() + DRAIN_TIMEOUT
    while time.monotonic() < drain_deadline and store.hlen(key("done", key_prefix)) < sent:
        time.sleep(0.1)
    done = {int(job): int(n) for job, n in store.hgetall(key("done", key_prefix)).items()}
    runs = {int(job): int(n) for job, n in store.hgetall(key("started", key_prefix)).items()}
    counts = {int(job): int(n) for job, n in store.hgetall(key("count", key_prefix)).items()}
    lost = sorted(set(range(sent)) - set(done))
    dead = layer.channel_statistics("thumbnails.dead")["messages_pending"]
    finished_twice = sum(1 for n in done.values() if n > 1)
    extra_runs = sum(runs.values()) - sent
    print(
        f"\nat-least-once thumbnails, {time.strftime('%Y-%m-%d')}, noisy 2-core box: {sent} jobs, {WORKERS} runworkers "
        f"x 2 threads, {kills} SIGKILLs ({mid_job} while the victim rendered) in {killing:.1f} s; "
        f"lost {len(lost)}; runs started {sum(runs.values())} ({extra_runs} beyond one per job); "
        f"jobs finished twice or more {finished_twice}; redelivered jobs {sum(1 for c in counts.values() if c > 1)}, "
        f"highest delivery_count {max(counts.values())}; dead letters {int(dead)}; "
        f"drained {time.monotonic() - started - killing:.1f} s after the last kill"
    )
    assert not lost, f"{len(lost)} jobs never finished: {lost[:20]}"
    assert all(runs.get(job, 0) >= 1 for job in range(sent))
    assert dead == 0
    assert mid_job >= KILLS // 2, "most kills must hit a worker in the middle of a job"
    assert sum(1 for c in counts.values() if c > 1) > 0, "no job was redelivered: the kills missed the jobs"
    layer.close()
