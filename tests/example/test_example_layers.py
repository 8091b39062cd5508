"""The example's Procfile processes on the other shared layers, chosen by `$CHANNEL_LAYER_URL`: IPC and RabbitMQ.

One set of processes per layer runs the browser checks of `test_example.py`
(chat in two pages, live blog fed from `manage.py shell`, data binding): each
needs a group broadcast across processes. Each layer's objects are the test's
own (an IPC prefix, a RabbitMQ queue prefix) and are removed afterwards.
"""

from __future__ import annotations

import os
import runpy
import uuid

import pytest

from channels_core.layers.ipc.cleanup import flush_prefix, shared_objects
from tests.apps.rabbitmq_cleanup import remove_prefix

from .harness import EXAMPLE, Example
from .test_example import chat_in_two_pages, data_binding_in_two_pages, live_blog_update

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def example_layer(monkeypatch, **environ: str) -> dict:
    """The example's CHANNEL_LAYERS["default"] under `environ` (nothing else of the channel settings set)."""
    for name in ("CHANNEL_LAYER_URL", "REDIS_URL", "CHANNELS_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(EXAMPLE / "example" / "settings.py"))["CHANNEL_LAYERS"]["default"]


def test_channel_layer_url_selects_the_layer_and_wins_over_redis_url(monkeypatch):
    amqp = example_layer(monkeypatch, CHANNEL_LAYER_URL=RABBITMQ_URL, REDIS_URL="redis://127.0.0.1:6379/0")
    assert (amqp["BACKEND"], amqp["CONFIG"]) == (
        "channels_core.layers.RabbitMQChannelLayer",
        {"url": RABBITMQ_URL, "prefix": "example:"},
    )
    assert amqp["ROUTING"] == "example.routing.channel_routing"
    redis = example_layer(monkeypatch, REDIS_URL="redis://127.0.0.1:6379/0", CHANNELS_PREFIX="heroku:")
    assert redis["CONFIG"] == {"hosts": ["redis://127.0.0.1:6379/0"], "prefix": "heroku:"}
    assert example_layer(monkeypatch)["BACKEND"] == "channels_core.layers.InMemoryChannelLayer"


def test_an_ipc_url_names_the_prefix_and_ipc_alone_uses_example(monkeypatch):
    named = example_layer(monkeypatch, CHANNEL_LAYER_URL="ipc://shop")
    assert (named["BACKEND"], named["CONFIG"]) == ("channels_core.layers.IPCChannelLayer", {"prefix": "shop"})
    assert example_layer(monkeypatch, CHANNEL_LAYER_URL="ipc:///")["CONFIG"] == {"prefix": "example"}


def test_an_unknown_scheme_stops_the_settings_with_the_schemes_it_knows(monkeypatch):
    with pytest.raises(ValueError, match="unknown scheme; use redis://"):
        example_layer(monkeypatch, CHANNEL_LAYER_URL="kafka://broker:9092")


def started(example: Example, backend: str) -> Example:
    example.start_procfile()
    # The worker logs its layer's class; the interface server does not, but a page it serves gets answers
    # from this worker only if both share the layer (on the in-memory default, each would have its own).
    example.processes["worker"].wait_for(f"Running worker against channel layer default ({backend})")
    return example


@pytest.fixture
def example_on_ipc(tmp_path):
    prefix = f"t{uuid.uuid4().hex[:12]}"
    example = Example(tmp_path, None, prefix, layer_url=f"ipc://{prefix}")
    try:
        started(example, "channels_core.layers.ipc.layer.IPCChannelLayer")
        assert shared_objects(prefix)  # under the URL's prefix
        yield example
    finally:
        example.stop()
        flush_prefix(prefix)
    assert shared_objects(prefix) == []


@pytest.fixture
def example_on_rabbitmq(tmp_path, key_prefix):
    example = Example(tmp_path, None, key_prefix, layer_url=RABBITMQ_URL)
    try:
        yield started(example, "channels_core.layers.rabbitmq.layer.RabbitMQChannelLayer")
    finally:
        example.stop()
        remove_prefix(RABBITMQ_URL, key_prefix)


def pages_on(example: Example, browser) -> None:
    first = chat_in_two_pages(example, browser)
    live_blog_update(example, browser)
    data_binding_in_two_pages(example, browser)
    assert first.console_errors() == []


def test_chat_live_blog_and_data_binding_on_ipc(example_on_ipc, browser):
    pages_on(example_on_ipc, browser)


def test_chat_live_blog_and_data_binding_on_rabbitmq(example_on_rabbitmq, browser):
    pages_on(example_on_rabbitmq, browser)
