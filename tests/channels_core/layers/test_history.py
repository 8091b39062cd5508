"""Group history and resume at the layer: positions, replay after a position, the atomic join, epochs.

Runs on the in-memory layer and on Redis (the shared server under a test prefix;
a private server where the test restarts or flushes it).
"""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from channels_core.layers import InMemoryChannelLayer, RedisChannelLayer
from channels_core.layers.history import (
    LATEST,
    HistoryNotSupported,
    HistorySettings,
    Position,
    envelope,
    frame_position,
    parse_since,
    status_message,
)
from tests.support.redis_cluster import shared_setup as cluster_setup

HISTORY = {
    "room-*": {"size": 50, "ttl": 60},
    "big-*": {"size": 100_000, "ttl": 60},
    "tiny-*": {"size": 3, "ttl": 60},
    "brief-*": {"size": 50, "ttl": 1},
}


@pytest.fixture(params=["memory", "redis", "redis-two-shards", "redis-cluster"])
def layer(request, redis_url, key_prefix):
    if request.param == "memory":
        layer = InMemoryChannelLayer(group_history=HISTORY, capacity=10_000)
    else:
        base = redis_url.rsplit("/", 1)[0]
        hosts = {
            "redis": [redis_url],
            "redis-two-shards": [f"{base}/0", f"{base}/1"],
            "redis-cluster": [cluster_setup().url()] if request.param == "redis-cluster" else None,
        }[request.param]
        layer = RedisChannelLayer(hosts=hosts, prefix=key_prefix, group_history=HISTORY, capacity=10_000)
    yield layer
    layer.flush()
    layer.close()


def frames(layer, channel: str, limit: int = 100_000) -> list[dict]:
    """Every message waiting for `channel`, parsed from its text frame."""
    out: list[dict] = []
    while True:
        got = layer.receive_batch([channel[: channel.index("!") + 1]], 1000)
        if not got:
            return out
        for name, message in got:
            assert name == channel
            out.append(json.loads(message["text"]))
        if len(out) >= limit:
            return out


def positions(parsed: list[dict]) -> list[int]:
    return [f["history"]["offset"] for f in parsed if "text" in f]


def test_groups_without_history_deliver_the_1x_message_byte_for_byte(layer):
    layer.group_add("plain", "a!x")
    layer.send_group("plain", {"text": '{"a": 1}'})
    assert layer.receive(["a!"]) == ("a!x", {"text": '{"a": 1}'})
    with pytest.raises(HistoryNotSupported, match="keeps no history"):
        layer.history_join("plain", "a!y", LATEST)


def test_each_message_gets_the_next_offset_of_one_epoch(layer):
    layer.group_add("room-1", "a!x")
    layer.group_add("room-1", "a!y")
    for i in range(4):
        layer.send_group("room-1", {"text": f"m{i}"})
    received = layer.receive_batch(["a!"], 100)
    for member in ("a!x", "a!y"):
        got = [json.loads(m["text"]) for c, m in received if c == member]
        assert [f["text"] for f in got] == ["m0", "m1", "m2", "m3"]
        assert positions(got) == [1, 2, 3, 4]
        assert len({f["history"]["epoch"] for f in got}) == 1
        assert all(f["history"]["group"] == "room-1" for f in got)


def test_binary_messages_are_kept_and_replayed_unchanged(layer):
    layer.history_join("room-b", "a!x", LATEST)
    epoch = frames(layer, "a!x")[0]["history"]["epoch"]
    layer.send_group("room-b", {"bytes": b"\x00\x01"})
    assert layer.receive(["a!"]) == ("a!x", {"bytes": b"\x00\x01"})
    layer.history_join("room-b", "b!y", Position(epoch, 0))
    assert layer.receive(["b!"]) == ("b!y", {"bytes": b"\x00\x01"})


def test_join_since_replays_what_was_missed_then_says_recovered(layer):
    layer.group_add("room-2", "a!x")
    for i in range(6):
        layer.send_group("room-2", {"text": f"m{i}"})
    seen = frames(layer, "a!x")
    epoch = seen[0]["history"]["epoch"]
    layer.history_join("room-2", "b!y", Position(epoch, 3))
    got = frames(layer, "b!y")
    assert [f["text"] for f in got[:-1]] == ["m3", "m4", "m5"]
    assert positions(got) == [4, 5, 6]
    assert got[-1] == {"history": {"group": "room-2", "epoch": epoch, "offset": 6, "recovered": True}}
    layer.send_group("room-2", {"text": "live"})
    assert positions(frames(layer, "b!y")) == [7]


def test_join_at_the_latest_position_replays_nothing(layer):
    layer.group_add("room-3", "a!x")
    layer.send_group("room-3", {"text": "m"})
    epoch = frames(layer, "a!x")[0]["history"]["epoch"]
    layer.history_join("room-3", "b!y", f"{epoch}:1")
    assert frames(layer, "b!y") == [{"history": {"group": "room-3", "epoch": epoch, "offset": 1, "recovered": True}}]


def test_a_new_client_learns_the_position_to_resume_from(layer):
    layer.history_join("room-4", "a!x", LATEST)
    (status,) = frames(layer, "a!x")
    assert status["history"]["offset"] == 0 and status["history"]["recovered"] is True
    layer.send_group("room-4", {"text": "first"})
    (first,) = frames(layer, "a!x")
    assert first["history"] == {"group": "room-4", "epoch": status["history"]["epoch"], "offset": 1}


def test_history_that_no_longer_reaches_back_is_not_recovered(layer):
    layer.group_add("tiny-1", "a!x")
    for i in range(10):
        layer.send_group("tiny-1", {"text": f"m{i}"})
    epoch = frames(layer, "a!x")[0]["history"]["epoch"]
    layer.history_join("tiny-1", "b!y", Position(epoch, 2))  # 3..10 needed, only 8..10 kept
    assert frames(layer, "b!y") == [{"history": {"group": "tiny-1", "epoch": epoch, "offset": 10, "recovered": False}}]
    layer.history_join("tiny-1", "c!z", Position(epoch, 7))  # 8..10: still there
    assert positions(frames(layer, "c!z")) == [8, 9, 10]


def test_another_epoch_is_not_recovered(layer):
    layer.group_add("room-5", "a!x")
    layer.send_group("room-5", {"text": "m"})
    epoch = frames(layer, "a!x")[0]["history"]["epoch"]
    layer.history_join("room-5", "b!y", Position("0ld3p0ch", 0))
    assert frames(layer, "b!y")[-1]["history"] == {"group": "room-5", "epoch": epoch, "offset": 1, "recovered": False}
    layer.history_join("room-5", "c!y", Position(epoch, 5))  # a position from the future
    assert frames(layer, "c!y")[-1]["history"]["recovered"] is False


def test_history_expires_after_its_ttl_and_a_new_epoch_begins(layer):
    layer.group_add("brief-1", "a!x")
    layer.send_group("brief-1", {"text": "m"})
    old = frames(layer, "a!x")[0]["history"]["epoch"]
    time.sleep(1.3)
    layer.history_join("brief-1", "b!y", Position(old, 0))
    (status,) = frames(layer, "b!y")
    assert status["history"]["recovered"] is False
    assert status["history"]["epoch"] != old and status["history"]["offset"] == 0


def test_flush_loses_the_history_and_changes_the_epoch(layer):
    layer.group_add("room-6", "a!x")
    layer.send_group("room-6", {"text": "m"})
    old = frames(layer, "a!x")[0]["history"]["epoch"]
    layer.flush()
    layer.group_add("room-6", "a!x")
    layer.send_group("room-6", {"text": "again"})
    (again,) = frames(layer, "a!x")
    assert again["history"]["epoch"] != old and again["history"]["offset"] == 1


def test_atomic_join_has_no_gap_and_no_duplicate_under_concurrent_sends(layer):
    """Joins at random moments while two threads send: each joiner sees every offset after its position once."""
    layer.group_add("big-7", "w!atch")
    layer.send_group("big-7", {"text": "start"})
    epoch = frames(layer, "w!atch")[0]["history"]["epoch"]
    stop = threading.Event()
    errors: list[BaseException] = []
    sent = [0, 0]

    def sender(me: int):
        try:
            for _ in range(3000):  # bounded; the joins happen meanwhile
                if stop.is_set():
                    return
                layer.send_group("big-7", {"text": "x"})
                sent[me] += 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(me,)) for me in range(2)]
    for thread in threads:
        thread.start()
    joiners = []
    try:
        for i in range(12):
            time.sleep(random.uniform(0.005, 0.03))
            channel = f"j{i}!c"
            # Half resume from offset 1 (replay then live), half start at the latest position.
            since = Position(epoch, 1) if i % 2 else LATEST
            layer.history_join("big-7", channel, since)
            joiners.append((channel, since))
        deadline = time.monotonic() + 20  # a loaded machine: enough sends after the last join all the same
        while sum(sent) < 40 and time.monotonic() < deadline and not errors:
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors
    layer.send_group("big-7", {"text": "end"})
    last = None
    for channel, since in joiners:
        got = frames(layer, channel)
        status = next(i for i, f in enumerate(got) if "recovered" in f["history"])
        assert got[status]["history"]["recovered"] is True
        offsets = positions(got)
        start = 2 if since != LATEST else got[status]["history"]["offset"] + 1
        assert offsets == list(range(start, start + len(offsets))), f"{channel}: gap or duplicate"
        assert positions(got[:status]) == (
            [] if since == LATEST else list(range(2, got[status]["history"]["offset"] + 1))
        )
        last = offsets[-1] if last is None else last
        assert offsets[-1] == last  # everyone got the final message
    assert last > 20


def test_since_is_checked():
    layer = InMemoryChannelLayer(group_history=HISTORY)
    with pytest.raises(ValueError):
        layer.history_join("room-1", "a!x", "no-offset")
    with pytest.raises(TypeError):
        layer.history_join("room-1", "a!x", 5)


@pytest.mark.parametrize(
    "config, error",
    [
        ({"room-*": {"size": 0}}, "size"),
        ({"room-*": {"ttl": 0}}, "ttl"),
        ({"room-*": {"length": 5}}, "unknown keys"),
        ({"room-*": 5}, "maps a pattern"),
    ],
)
def test_settings_are_checked(config, error):
    with pytest.raises(ValueError, match=error):
        HistorySettings(config)


def test_first_matching_pattern_wins_and_history_is_off_by_default():
    settings = HistorySettings({"room-vip-*": {"size": 5}, "room-*": {"size": 10, "ttl": 30}})
    assert settings.rule_for("room-vip-1").size == 5
    assert settings.rule_for("room-2").ttl == 30
    assert settings.rule_for("lobby") is None
    assert not HistorySettings(None) and InMemoryChannelLayer().history_settings.rule_for("room-1") is None


def test_parse_since_reads_the_bridges_query_string():
    got = parse_since(b"since=room-1:abc:5&x=1&since=room.2:e-f:0&since=bad&since=g:h:-1")
    assert got == {"room-1": Position("abc", 5), "room.2": Position("e-f", 0)}


def test_on_a_private_redis_a_restart_changes_the_epoch(private_redis, key_prefix):
    layer = RedisChannelLayer(hosts=[private_redis.url], prefix=key_prefix, group_history=HISTORY)
    try:
        layer.group_add("room-8", "a!x")
        layer.send_group("room-8", {"text": "before"})
        old = frames(layer, "a!x")[0]["history"]["epoch"]
        private_redis.restart()  # no persistence: everything is gone
        deadline = time.monotonic() + 10
        while True:
            try:
                layer.history_join("room-8", "b!y", Position(old, 1))
                break
            except layer.LayerConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        (status,) = frames(layer, "b!y")
        assert status["history"]["recovered"] is False and status["history"]["epoch"] != old
        private_redis.client().flushall()  # and a FLUSHALL of this private server does the same
        layer.history_join("room-8", "c!y", Position(status["history"]["epoch"], 0))
        (flushed,) = frames(layer, "c!y")
        assert flushed["history"]["recovered"] is False
        assert flushed["history"]["epoch"] not in (old, status["history"]["epoch"])
    finally:
        layer.close()


def test_on_several_shards_members_on_every_shard_see_one_order(redis_url, key_prefix):
    """Client-side shards: members spread over both shards get the same offsets; a join on either resumes."""
    base = redis_url.rsplit("/", 1)[0]
    layer = RedisChannelLayer(hosts=[f"{base}/0", f"{base}/1"], prefix=key_prefix, group_history=HISTORY)
    try:
        members = [f"s{i}!c" for i in range(8)]
        assert len({layer.keys.shard_of(m[: m.index("!") + 1]).index for m in members}) == 2
        for member in members:
            layer.group_add("room-10", member)
        for i in range(5):
            layer.send_group("room-10", {"text": f"m{i}"})
        epochs = set()
        for member in members:
            got = frames(layer, member)
            assert positions(got) == [1, 2, 3, 4, 5]
            epochs |= {f["history"]["epoch"] for f in got}
        (epoch,) = epochs
        for member in ("j0!c", "j1!c", "j2!c", "j3!c"):
            layer.history_join("room-10", member, Position(epoch, 2))
            resumed = frames(layer, member)
            assert positions(resumed) == [3, 4, 5] and resumed[-1]["history"]["recovered"] is True
    finally:
        layer.flush()
        layer.close()


def test_frame_position_reads_what_the_bridge_reads():
    wrapped = envelope({"text": '{"a": 1}'}, "room-1", "e1", 7)["text"]
    assert frame_position(wrapped) == ("room-1", Position("e1", 7))
    assert frame_position(status_message("room-1", "e2", 0, False)["text"]) == ("room-1", Position("e2", 0))
    assert frame_position('{"a": 1}') is None and frame_position('{"history": 5}') is None
