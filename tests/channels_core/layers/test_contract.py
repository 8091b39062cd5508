"""`channels_core.layers.contract`: `supports()`, and a third-party layer built on `BaseChannelLayer`."""

from __future__ import annotations

import pytest

from channels_core.layers import BaseChannelLayer, InMemoryChannelLayer, RedisChannelLayer, names
from channels_core.layers.contract import EXTENSIONS, ChannelLayer, implements, supports
from interface_server.sender import Item, SendQueues

from .conformance import LayerConformance


class DictLayer(BaseChannelLayer):
    """What a third party writes first: `send` and `receive` on `BaseChannelLayer`, no extension."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.queues: dict[str, list[dict]] = {}

    def send(self, channel: str, message: dict) -> None:
        names.validate_channel_name(channel)
        queue = self.queues.setdefault(channel, [])
        if len(queue) >= self.get_capacity(channel):
            raise self.ChannelFull(channel)
        queue.append(message)

    def receive(self, channels, block=False):
        for channel in names.validate_receive_channels(channels):
            if self.queues.get(channel):
                return channel, self.queues[channel].pop(0)
        return None, None


def test_a_layer_on_the_base_class_is_a_channel_layer_with_no_extension():
    layer = DictLayer()
    assert isinstance(layer, ChannelLayer)
    assert {name: supports(layer, name) for name in EXTENSIONS} == dict.fromkeys(EXTENSIONS, False)
    LayerConformance().test_lists_exactly_the_extensions_it_implements(layer)


def test_the_interface_server_sends_one_by_one_to_a_layer_without_batch():
    """A run of sends to one channel reaches such a layer; what does not fit waits for room, in order."""
    layer = DictLayer(capacity=2)
    queues = SendQueues(layer, lambda rc, channel, message: layer.send(channel, message), send_timeout=30)
    queues.add([Item("message", "http.request", {"n": n}) for n in range(3)])
    done = queues.step()
    assert layer.queues["http.request"] == [{"n": 0}, {"n": 1}]
    assert [item.message for item in done] == [{"n": 0}, {"n": 1}]
    assert all(item.error is None for item in done)
    assert queues.blocked_for("http.request") >= 0 and queues.pending() == 1
    layer.queues["http.request"].clear()
    queues.queues["http.request"].retry_at = 0
    assert [item.message for item in queues.step()] == [{"n": 2}]


def test_supports_needs_the_name_listed_and_every_method():
    class ListsWhatItLacks(DictLayer):
        extensions = ["batch"]

        def send_many(self, channel, messages):
            for message in messages:
                self.send(channel, message)

    class ImplementsWhatItDoesNotList(InMemoryChannelLayer):
        extensions = ["groups", "flush", "statistics", "ordering"]

    lacking = ListsWhatItLacks()
    assert not supports(lacking, "batch")
    with pytest.raises(AssertionError, match="does not implement"):
        LayerConformance().test_lists_exactly_the_extensions_it_implements(lacking)
    unlisted = ImplementsWhatItDoesNotList()
    assert implements(unlisted, "batch") and not supports(unlisted, "batch")
    with pytest.raises(AssertionError, match="does not list"):
        LayerConformance().test_lists_exactly_the_extensions_it_implements(unlisted)


def test_a_partial_extension_must_be_listed_too():
    class SendsManyOnly(DictLayer):
        def send_many(self, channel, messages):
            for message in messages:
                self.send(channel, message)

    with pytest.raises(AssertionError, match="'batch'"):
        LayerConformance().test_lists_exactly_the_extensions_it_implements(SendsManyOnly())


def test_supports_sees_through_a_delegating_wrapper():
    class Wrapper:
        def __init__(self, layer):
            self.layer = layer

        def __getattr__(self, name):
            return getattr(self.layer, name)

    wrapped = Wrapper(InMemoryChannelLayer())
    assert supports(wrapped, "batch") and supports(wrapped, "ordering")
    assert not supports(wrapped, "event_receiver")


def test_the_redis_layer_lists_its_event_receiver():
    assert supports(RedisChannelLayer(hosts=["redis://127.0.0.1:6379"]), "event_receiver")


def test_an_unknown_extension_name_is_an_error():
    with pytest.raises(ValueError, match="'twisted'.*groups"):
        supports(InMemoryChannelLayer(), "twisted")


def test_the_conformance_suite_skips_the_extensions_a_layer_does_not_list():
    with pytest.raises(pytest.skip.Exception, match="DictLayer does not list statistics"):
        LayerConformance().test_statistics(layer=DictLayer())
    with pytest.raises(pytest.skip.Exception, match="groups, statistics"):
        LayerConformance().test_capacity_group(layer=DictLayer())


def test_the_conformance_suite_checks_the_arguments_of_extension_methods():
    class UntimedBatches(InMemoryChannelLayer):
        def receive_batch(self, channels, max_messages=100, block=False):
            return super().receive_batch(channels, max_messages, block)

    with pytest.raises(AssertionError, match=r"receive_batch\(\) lacks \['timeout'\] of BatchExtension"):
        LayerConformance().test_methods_take_the_arguments_of_the_contract(UntimedBatches())
