"""`channels_core.layers.layer_url`: one URL selects the Redis, RabbitMQ or IPC layer."""

from __future__ import annotations

import uuid

import pytest

from channels_core.layers import IPCChannelLayer, RedisChannelLayer, from_url, settings_from_url
from channels_core.layers.ipc.cleanup import shared_objects
from channels_core.layers.layer_url import config_from_url, kind_of


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://:pw@cache.example:6380/1",
        "unix:///run/redis/redis.sock",
        "redis+sentinel://s1:26379,s2:26379/mymaster/0",
        "redis+cluster://n1:7000,n2:7001/",
        "REDIS://upper.example:6379",
    ],
)
def test_redis_urls_select_the_redis_layer_with_the_url_as_its_host(url):
    entry = settings_from_url(url, prefix="app:")
    assert entry == {"BACKEND": "channels_core.layers.RedisChannelLayer", "CONFIG": {"hosts": [url], "prefix": "app:"}}


def test_several_redis_urls_are_client_side_shards():
    backend, config = config_from_url(" redis://a:6379/0\tredis://b:6379/0 ")
    assert backend == "channels_core.layers.RedisChannelLayer"
    assert config == {"hosts": ["redis://a:6379/0", "redis://b:6379/0"]}


@pytest.mark.parametrize("url", ["amqp://guest:guest@127.0.0.1:5672/%2F", "amqps://u:p@broker.example/vhost"])
def test_amqp_urls_select_the_rabbitmq_layer(url):
    entry = settings_from_url(url, routing="app.routing.routes", capacity=50)
    assert entry == {
        "BACKEND": "channels_core.layers.RabbitMQChannelLayer",
        "CONFIG": {"url": url, "capacity": 50},
        "ROUTING": "app.routing.routes",
    }


@pytest.mark.parametrize(
    ("url", "prefix"),
    [("ipc://myapp", "myapp"), ("ipc:///myapp", "myapp"), ("ipc:///my-app_2/", "my-app_2"), ("ipc://", None)],
)
def test_ipc_urls_select_the_ipc_layer_and_carry_its_prefix(url, prefix):
    backend, config = config_from_url(url, prefix="fallback")
    assert backend == "channels_core.layers.IPCChannelLayer"
    assert config == {"prefix": prefix or "fallback"}  # the URL's prefix wins; none in it keeps the option


def test_ipc_url_without_prefix_or_options_leaves_the_layers_default():
    assert config_from_url("ipc:///") == ("channels_core.layers.IPCChannelLayer", {})


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memcached://127.0.0.1:11211", "unknown scheme; use redis://"),
        ("http://broker.example/", "unknown scheme"),
        ("127.0.0.1:6379", "unknown scheme"),
        ("", "empty"),
        ("   ", "empty"),
        ("amqp://a/ amqp://b/", "Redis shards only"),
        ("redis://a:6379 amqp://b/", "Redis shards only"),
        ("ipc://a:1", "no user, port"),
        ("ipc://app?capacity=5", "no user, port, query"),
        ("ipc://app/more", "one name only"),
        ("ipc://my.app", "1 to 64 of A-Z"),
    ],
)
def test_other_urls_are_refused_with_a_message_naming_what_works(url, message):
    with pytest.raises(ValueError, match=message.replace("?", r"\?")):
        settings_from_url(url)


def test_a_refused_url_does_not_show_its_password():
    with pytest.raises(ValueError) as raised:
        kind_of("mongodb://admin:s3cret@db.example/")
    assert "s3cret" not in str(raised.value) and "***" in str(raised.value)


def test_from_url_builds_the_redis_layer(redis_url, key_prefix):
    layer = from_url(redis_url, prefix=key_prefix)
    try:
        assert isinstance(layer, RedisChannelLayer)
        layer.send("url.test", {"n": 1})
        assert layer.receive(["url.test"]) == ("url.test", {"n": 1})
    finally:
        layer.flush()
        layer.close()


def test_from_url_builds_the_ipc_layer_under_the_urls_prefix():
    prefix = f"t{uuid.uuid4().hex[:12]}"
    layer = from_url(f"ipc://{prefix}", capacity=7)
    try:
        assert isinstance(layer, IPCChannelLayer)
        assert (layer.prefix, layer.capacity) == (prefix, 7)
        layer.send("url.test", {"n": 2})
        assert layer.receive(["url.test"]) == ("url.test", {"n": 2})
        assert shared_objects(prefix)  # it lives in /dev/shm under the URL's prefix
    finally:
        layer.flush()
        layer.close()
    assert shared_objects(prefix) == []


def test_from_url_builds_the_rabbitmq_layer(key_prefix):
    from channels_core.layers import RabbitMQChannelLayer

    layer = from_url("amqp://guest:guest@127.0.0.1:5672/%2F", prefix=key_prefix)
    try:
        assert isinstance(layer, RabbitMQChannelLayer)
        layer.send("url.test", {"n": 3})
        assert layer.receive(["url.test"], block=True) == ("url.test", {"n": 3})
    finally:
        layer.flush()
        layer.close()
