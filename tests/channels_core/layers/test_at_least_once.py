"""At-least-once channels (`at_least_once` setting): ack, redelivery, delivery count, dead letters.

Each behaviour runs on the in-memory layer, one Redis (plain and encrypted), two Redis shards and
a Redis Cluster (48 buckets: every key of one queue in one slot).
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from channels_core.layers import InMemoryChannelLayer, RedisChannelLayer
from channels_core.layers.contract import supports
from channels_core.layers.reliable import DEAD_LETTER_KEY, DELIVERY_KEY, RECLAIM_INTERVAL, Rules, delivery_of
from tests.support.redis_cluster import shared_setup as cluster_setup

REDELIVER = 0.3


def _settings(**overrides):
    policy = {"max_deliveries": 3, "dead_letter": "jobs.dead", "redeliver_after": REDELIVER, **overrides}
    return {"jobs": policy, "nodl": {"max_deliveries": 2, "redeliver_after": REDELIVER}}


@pytest.fixture(params=["memory", "redis", "redis-encrypted", "redis-2-shards", "redis-cluster"])
def make_layer(request, redis_url, key_prefix):
    made = []

    def make(capacity=100, **overrides):
        if request.param == "memory":
            layer = InMemoryChannelLayer(capacity=capacity, at_least_once=_settings(**overrides))
        else:
            hosts = [redis_url]
            options = {}
            if request.param == "redis-2-shards":
                base = redis_url.rsplit("/", 1)[0]
                hosts = [f"{base}/0", f"{base}/1"]
            elif request.param == "redis-cluster":
                hosts = [cluster_setup().url()]
            elif request.param == "redis-encrypted":
                options["symmetric_encryption_keys"] = ["a-key-of-enough-entropy"]
            layer = RedisChannelLayer(
                hosts=hosts, prefix=key_prefix, capacity=capacity, at_least_once=_settings(**overrides), **options
            )
        made.append(layer)
        return layer

    yield make
    for layer in made:
        layer.flush()
        layer.close()


@pytest.fixture
def layer(make_layer):
    return make_layer()


def _take(layer, channel="jobs", block=False):
    got, message = layer.receive([channel], block=block)
    assert got == channel, f"nothing received on {channel}"
    return message


def _nothing(layer, *channels):
    return layer.receive(list(channels)) == (None, None)


def test_the_layer_lists_the_extension(layer):
    assert supports(layer, "at_least_once")
    assert layer.at_least_once_policy("jobs").max_deliveries == 3
    assert layer.at_least_once_policy("other") is None


def test_an_acked_message_is_gone_for_good(layer):
    layer.send("jobs", {"job": 1})
    message = _take(layer)
    assert message["job"] == 1
    assert message[DELIVERY_KEY]["count"] == 1
    delivery_id, count = delivery_of(message)
    assert count == 1
    assert layer.ack("jobs", delivery_id) is True
    assert layer.ack("jobs", delivery_id) is False
    time.sleep(REDELIVER + 0.1)
    assert _nothing(layer, "jobs")


def test_an_unacked_message_comes_back_with_its_delivery_count_raised(layer):
    layer.send("jobs", {"job": 1, "data": b"\x00bytes"})
    first = _take(layer)
    assert _nothing(layer, "jobs")  # in flight: nobody else gets it
    time.sleep(REDELIVER + 0.1)
    second = _take(layer)
    assert second["job"] == 1 and second["data"] == b"\x00bytes"
    assert second[DELIVERY_KEY]["count"] == 2
    assert second[DELIVERY_KEY]["id"] != first[DELIVERY_KEY]["id"]
    # The first delivery's ack comes too late: it no longer removes anything.
    assert layer.ack("jobs", first[DELIVERY_KEY]["id"]) is False
    assert layer.ack("jobs", second[DELIVERY_KEY]["id"]) is True


def test_a_redelivered_message_goes_before_the_ones_that_waited_behind_it(layer):
    layer.send("jobs", {"job": "a"})
    layer.send("jobs", {"job": "b"})
    assert _take(layer)["job"] == "a"
    time.sleep(REDELIVER + 0.1)
    again = _take(layer)
    assert (again["job"], again[DELIVERY_KEY]["count"]) == ("a", 2)
    assert _take(layer)["job"] == "b"


def test_after_max_deliveries_the_message_goes_to_the_dead_letter_channel(layer):
    layer.send("jobs", {"job": 7})
    for count in (1, 2, 3):
        message = _take(layer)
        assert message[DELIVERY_KEY]["count"] == count
        time.sleep(REDELIVER + 0.1)
    assert _nothing(layer, "jobs")
    channel, dead = layer.receive(["jobs.dead"])
    assert channel == "jobs.dead"
    assert dead["job"] == 7
    assert DELIVERY_KEY not in dead
    assert dead[DEAD_LETTER_KEY] == {"channel": "jobs", "deliveries": 3, "reason": "redelivered too often"}
    assert _nothing(layer, "jobs", "jobs.dead")


def test_without_a_dead_letter_channel_the_message_is_dropped_and_logged(layer, caplog):
    layer.send("nodl", {"job": 1})
    _take(layer, "nodl")
    time.sleep(REDELIVER + 0.1)
    _take(layer, "nodl")
    time.sleep(REDELIVER + 0.1)
    with caplog.at_level(logging.ERROR):
        assert _nothing(layer, "nodl")
    assert "after 2 deliveries" in caplog.text


def test_touch_keeps_a_long_job_from_being_handed_out_twice(make_layer):
    layer = make_layer(redeliver_after=1.0)  # touches every 0.25 s: room for a loaded machine
    layer.send("jobs", {"job": 1})
    message = _take(layer)
    delivery_id = message[DELIVERY_KEY]["id"]
    for _ in range(8):  # 8 x 0.25 s: twice redeliver_after
        time.sleep(0.25)
        assert layer.touch("jobs", [delivery_id]) == 1
        assert _nothing(layer, "jobs")
    time.sleep(1.1)  # touches stop: the worker died
    assert _take(layer)[DELIVERY_KEY]["count"] == 2
    assert layer.touch("jobs", [delivery_id]) == 0


def test_nack_requeues_at_the_tail_then_dead_letters(layer):
    layer.send("jobs", {"job": "a"})
    layer.send("jobs", {"job": "b"})
    a = _take(layer)
    assert layer.nack("jobs", a[DELIVERY_KEY]["id"]) == "requeued"
    assert layer.nack("jobs", a[DELIVERY_KEY]["id"]) == "gone"
    b = _take(layer)
    assert b["job"] == "b"
    layer.ack("jobs", b[DELIVERY_KEY]["id"])
    for count in (2, 3):
        a = _take(layer)
        assert (a["job"], a[DELIVERY_KEY]["count"]) == ("a", count)
        expected = "requeued" if count < 3 else "dead"
        assert layer.nack("jobs", a[DELIVERY_KEY]["id"], "consumer failed") == expected
    assert _nothing(layer, "jobs")
    dead = _take(layer, "jobs.dead")
    assert dead[DEAD_LETTER_KEY] == {"channel": "jobs", "deliveries": 3, "reason": "consumer failed"}


def test_a_blocking_receive_wakes_for_a_send_and_for_a_redelivery(layer):
    threading.Timer(0.2, layer.send, ("jobs", {"job": 1})).start()
    started = time.monotonic()
    channel, message = layer.receive(["jobs", "normal"], block=True)
    assert channel == "jobs"
    assert time.monotonic() - started < 0.2 + RECLAIM_INTERVAL / 2  # a bell, not the reclaim timer
    started = time.monotonic()
    channel, again = layer.receive(["jobs", "normal"], block=True)
    assert channel == "jobs" and again[DELIVERY_KEY]["count"] == 2
    assert time.monotonic() - started < REDELIVER + RECLAIM_INTERVAL + 0.5


def test_receive_batch_takes_several_and_normal_channels_stay_at_most_once(layer):
    layer.send_many("jobs", [{"job": i} for i in range(5)])
    layer.send("normal", {"plain": True})
    got = layer.receive_batch(["jobs", "normal"], 10)
    jobs = sorted(m["job"] for c, m in got if c == "jobs")
    assert jobs == [0, 1, 2, 3, 4]
    normal = [m for c, m in got if c == "normal"]
    assert normal == [{"plain": True}]
    time.sleep(REDELIVER + 0.1)
    again = layer.receive_batch(["jobs", "normal"], 10, block=True, timeout=0.5)
    assert sorted(m["job"] for c, m in again) == [0, 1, 2, 3, 4]  # the normal message is not redelivered
    assert {c for c, _ in again} == {"jobs"}


def test_a_message_that_waits_longer_than_its_expiry_expires(make_layer):
    layer = make_layer(expiry=0.2)
    layer.send("jobs", {"job": 1})
    time.sleep(0.35)
    assert _nothing(layer, "jobs")


def test_a_full_channel_refuses_sends_and_in_flight_messages_do_not_count(make_layer):
    layer = make_layer(capacity=2)
    layer.send("jobs", {"job": 1})
    layer.send("jobs", {"job": 2})
    with pytest.raises(layer.ChannelFull):
        layer.send("jobs", {"job": 3})
    _take(layer)
    layer.send("jobs", {"job": 3})


def test_normal_channels_never_run_the_at_least_once_path(layer, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the at-least-once path ran for a normal channel")

    monkeypatch.setattr(layer, "_alo_deliver" if isinstance(layer, InMemoryChannelLayer) else "_alo_take", boom)
    layer.send("normal", {"n": 1})
    assert layer.receive(["normal"]) == ("normal", {"n": 1})
    assert layer.receive_batch(["normal"], 5, block=True, timeout=0.1) == []


def test_bad_settings_are_refused_at_construction():
    for bad in (
        {"jobs": {"max_deliveries": 0}},
        {"jobs": {"max_deliveries": "3"}},
        {"jobs": {"redeliver_after": -1}},
        {"jobs": {"dead_letter": "bad name!"}},
        {"jobs": {"dead_letter": "reply!"}},
        {"jobs": {"retries": 3}},
        {"jobs": 5},
        ["jobs"],
        {"*": {}},
        {"websocket.*": {}},
        {"http.request": True},
    ):
        with pytest.raises(ValueError):
            InMemoryChannelLayer(at_least_once=bad)
        with pytest.raises(ValueError):
            RedisChannelLayer(at_least_once=bad)


def test_only_normal_channel_names_can_be_at_least_once():
    rules = Rules({"re*": {}})  # a glob that matches the names below but for their '!' and '?'
    assert rules.get("render") is not None
    assert rules.get("replies!") is None
    assert rules.get("reply?") is None
    assert Rules({"a.*": True, "a.b": {"max_deliveries": 9}}).get("a.b").max_deliveries == 5  # first match wins


def test_ipc_layer_refuses_the_setting():
    from channels_core.layers.ipc.layer import IPCChannelLayer

    with pytest.raises(ValueError, match="does not offer at-least-once"):
        IPCChannelLayer(prefix="alotest", at_least_once={"jobs": {}})


def test_rabbitmq_layer_refuses_the_setting():
    from channels_core.layers.rabbitmq.layer import RabbitMQChannelLayer

    with pytest.raises(ValueError, match="does not offer at-least-once"):
        RabbitMQChannelLayer(at_least_once={"jobs": {}})


def test_queue_waits_stay_one_per_message_handed_out(layer):
    threading.Timer(0.2, layer.send, ("jobs", {"job": 1})).start()
    got = layer.receive_batch(["jobs", "normal"], 10, block=True, timeout=2)
    assert [m["job"] for _, m in got] == [1]
    waits = layer.last_queue_waits()  # the bell that woke the read is not a message
    assert len(waits) == 1 and 0 <= waits[0] < 2


def test_channel_statistics_show_the_age_and_what_is_in_flight(layer):
    layer.send_many("jobs", [{"job": 1}, {"job": 2}])
    time.sleep(0.2)
    _take(layer)
    stats = layer.channel_statistics("jobs")
    assert stats["messages_pending"] == 1
    assert stats["messages_in_flight"] == 1
    assert 0.15 < stats["messages_max_age"] < 5
    assert "messages_in_flight" not in layer.channel_statistics("normal")
