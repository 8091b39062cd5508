"""The delay server's parts in process: the protocol, the stored encoding, and the loop on an in-memory layer."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels_core.delay import encoding
from channels_core.delay.models import DelayedMessage
from channels_core.delay.protocol import InvalidDelayMessage, parse_delay_message
from channels_core.delay.worker import DelayWorker
from channels_core.layers import InMemoryChannelLayer

# Transactional: the loop closes stale database connections between steps, as a worker does,
# which a test wrapped in one transaction would not survive.
pytestmark = pytest.mark.django_db(transaction=True)


# -- the protocol ------------------------------------------------------------------


def test_a_valid_message_parses():
    request = parse_delay_message({"channel": "later", "delay": 250, "content": {"a": 1}})
    assert (request.channel, request.delay, request.content) == ("later", 250, {"a": 1})


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("nope", "not a dict"),
        ({"channel": "x", "content": {}}, "missing 'delay'"),
        ({"channel": "bad name!!", "delay": 1, "content": {}}, "'channel'"),
        ({"channel": "x", "delay": "10", "content": {}}, "number of milliseconds"),
        ({"channel": "x", "delay": -1, "content": {}}, "from 0 up"),
        ({"channel": "x", "delay": float("nan"), "content": {}}, "from 0 up"),
        ({"channel": "x", "delay": 10**20, "content": {}}, "hundred years"),
        ({"channel": "x", "delay": 1, "content": [1]}, "must be a dict"),
    ],
)
def test_invalid_messages_say_why(message, reason):
    with pytest.raises(InvalidDelayMessage, match=reason):
        parse_delay_message(message)


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), values, max_size=5))
def test_stored_content_round_trips_exactly_bytes_included(content):
    assert encoding.loads(encoding.dumps(content)) == content


def test_content_without_bytes_is_plain_json_as_in_1x():
    assert encoding.dumps({"text": "hi", "n": [1, 2]}) == '{"text":"hi","n":[1,2]}'


# -- the loop ----------------------------------------------------------------------


@pytest.fixture
def layer():
    layer = InMemoryChannelLayer(capacity=3)
    yield layer
    layer.close()


def test_messages_are_stored_then_sent_when_due_in_due_order(layer):
    worker = DelayWorker(layer, signal_handlers=False, max_wait=0.05)
    layer.send("asgi.delay", {"channel": "out", "delay": 300, "content": {"n": "late"}})
    layer.send("asgi.delay", {"channel": "out", "delay": 100, "content": {"n": "early"}})
    worker.step()
    assert DelayedMessage.objects.count() == 2
    assert layer.receive(["out"]) == (None, None)
    deadline = time.monotonic() + 2
    got = []
    while len(got) < 2 and time.monotonic() < deadline:
        worker.step()
        channel, message = layer.receive(["out"])
        if channel:
            got.append(message["n"])
    assert got == ["early", "late"]
    assert DelayedMessage.objects.count() == 0
    assert (worker.stored, worker.sent) == (2, 2)


def test_invalid_messages_are_logged_and_skipped_and_the_loop_goes_on(layer, caplog):
    worker = DelayWorker(layer, signal_handlers=False, max_wait=0.05)
    layer.send("asgi.delay", {"channel": "out", "delay": "soon", "content": {}})
    layer.send("asgi.delay", {"channel": "out", "delay": 0, "content": {"ok": True}})
    with caplog.at_level("WARNING", "channels_core.delay"):
        worker.step()
    assert "Skipped an invalid asgi.delay message: 'delay' must be a number" in caplog.text
    assert layer.receive(["out"]) == ("out", {"ok": True})
    assert worker.rejected == 1


def test_a_full_channel_reschedules_with_backoff_then_drops(layer, caplog):
    worker = DelayWorker(layer, signal_handlers=False, max_wait=0.05, retry_delay=10, max_attempts=3)
    for i in range(3):
        layer.send("full", {"filler": i})
    layer.send("asgi.delay", {"channel": "full", "delay": 0, "content": {"x": 1}})
    with caplog.at_level("WARNING", "channels_core.delay"):
        worker.step()
        assert DelayedMessage.objects.get().attempts == 1
        time.sleep(0.05)
        worker.step()
        time.sleep(0.05)
        worker.step()
    assert DelayedMessage.objects.count() == 0
    assert worker.dropped == 1
    assert "was full 3 times in a row" in caplog.text


def test_the_1x_model_api(layer):
    row = DelayedMessage(channel_name="out", delay=0)
    row.set_content({"b": b"\x00\x01"})
    row.save()
    assert DelayedMessage.objects.is_due().count() == 1
    row.send(channel_layer=layer)
    assert layer.receive(["out"]) == ("out", {"b": b"\x00\x01"})
    assert DelayedMessage.objects.count() == 0


def test_a_layer_without_timed_receive_is_refused():
    class Old:
        def receive_batch(self, channels, max_messages=100, block=False):
            return []

    with pytest.raises(TypeError, match="timeout"):
        DelayWorker(Old())
