"""`ChannelTestCase`: every test gets fresh in-memory channel layers, with the project's routing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.test import TestCase, TransactionTestCase

from .. import DEFAULT_CHANNEL_LAYER
from ..asgi import ChannelLayerWrapper, channel_layers
from ..layers import InMemoryChannelLayer
from ..message import Message
from .on_commit import run_on_commit_at_once, run_pending

# The options of a layer's CONFIG that the in-memory stand-in copies, so ChannelFull and expiry
# behave in tests as they do in production. Connection options (hosts, prefix...) mean nothing here.
_COPIED_OPTIONS = ("expiry", "group_expiry", "capacity", "channel_capacity")


def current_routing(alias: str) -> Any:
    """The routing `alias` has right now: the live wrapper's (which `apply_routes` may have changed), else ROUTING."""
    wrapper = channel_layers.backends.get(alias)
    if wrapper is not None:
        return wrapper.routing
    config = channel_layers.configs.get(alias)
    if not isinstance(config, dict):
        raise LookupError(f"test_channel_aliases names {alias!r}, which is not in settings.CHANNEL_LAYERS")
    return config.get("ROUTING", [])


def in_memory_layer(alias: str) -> ChannelLayerWrapper:
    """A new, empty in-memory layer for `alias`, with its routing and its capacity and expiry options."""
    routing = current_routing(alias)
    config = channel_layers.configs.get(alias, {}).get("CONFIG") or {}
    options = {key: config[key] for key in _COPIED_OPTIONS if key in config}
    return ChannelLayerWrapper(InMemoryChannelLayer(**options), alias, routing)


class LayerSwap:
    """Puts fresh in-memory layers in `channel_layers` for some aliases, and puts the old ones back."""

    def __init__(self, aliases: list[str]) -> None:
        self.aliases = list(aliases)
        self.old: dict[str, ChannelLayerWrapper | None] = {}

    def enter(self) -> None:
        for alias in self.aliases:
            self.old[alias] = channel_layers.set(alias, in_memory_layer(alias))

    def exit(self) -> None:
        for alias, old in self.old.items():
            replaced = channel_layers.set(alias, old)
            if replaced is not None:
                replaced.channel_layer.close()
        self.old = {}


class ChannelTestCaseMixin:
    """Swaps each alias in `test_channel_aliases` for an in-memory layer with the same routing.

    A new layer per test (and one for `setUpClass`/`setUpTestData`), so a
    message sent in one test is never seen by the next, and nothing reaches
    the real layer (Redis) of the settings.
    """

    test_channel_aliases: list[str] = [DEFAULT_CHANNEL_LAYER]

    @classmethod
    def setUpClass(cls) -> None:
        # Before super(): setUpTestData may save models whose save() sends to a Group.
        swap = LayerSwap(cls.test_channel_aliases)
        swap.enter()
        cls.addClassCleanup(swap.exit)
        super().setUpClass()

    @contextlib.contextmanager
    def _around_test(self) -> Iterator[None]:
        swap = LayerSwap(self.test_channel_aliases)
        swap.enter()
        try:
            yield
        finally:
            swap.exit()

    def __call__(self, result: Any = None) -> Any:
        # Around Django's own per-test setup (__call__ runs _pre_setup, the test, _post_teardown),
        # not inside _pre_setup: that is a classmethod from Django 5.1 on, run eagerly for the first test.
        with self._around_test():
            return super().__call__(result)

    def debug(self) -> None:
        with self._around_test():
            super().debug()

    def get_next_message(
        self, channel: str, alias: str = DEFAULT_CHANNEL_LAYER, require: bool = False
    ) -> Message | None:
        """The next message sent to `channel` during this test, or None; with `require`, fail the test instead."""
        run_pending()
        layer = channel_layers[alias]
        received, content = layer.receive([channel], block=False)
        if received is None:
            if require:
                self.fail(f"Expected a message on channel {channel!r} (layer {alias!r}), but none was sent")
            return None
        return Message(content, received, layer)


class ChannelTestCase(ChannelTestCaseMixin, TestCase):
    """Django's `TestCase` (a transaction per test) with in-memory channel layers.

    On-commit callbacks run when they would without the test's transaction
    (`on_commit.run_on_commit_at_once`), so a binding's message can be
    received right after the save, as in Channels 1.x tests.
    """

    @contextlib.contextmanager
    def _around_test(self) -> Iterator[None]:
        with super()._around_test(), run_on_commit_at_once(self._databases_names(include_mirrors=False)):
            yield


class TransactionChannelTestCase(ChannelTestCaseMixin, TransactionTestCase):
    """Django's `TransactionTestCase` (tables flushed after each test) with in-memory channel layers."""
