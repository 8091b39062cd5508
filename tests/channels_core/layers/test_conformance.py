"""The conformance suite against the in-memory layer and the Redis layer
(plain, encrypted, sharded over two servers, behind Redis Sentinel, and on Redis Cluster)."""

from __future__ import annotations

import pytest

from channels_core.layers import InMemoryChannelLayer, RedisChannelLayer
from tests.support.redis_cluster import shared_setup as cluster_setup
from tests.support.redis_sentinel import shared_setup

from .conformance import LayerConformance

SETTINGS = {"expiry": 1, "group_expiry": 2, "capacity": 5}


class TestInMemoryLayer(LayerConformance):
    @pytest.fixture
    def layer(self):
        layer = InMemoryChannelLayer(**SETTINGS)
        yield layer
        layer.close()


def _redis_layer(prefix, **options):
    layer = RedisChannelLayer(prefix=prefix, **SETTINGS, **options)
    layer.flush()
    return layer


class TestRedisLayer(LayerConformance):
    @pytest.fixture
    def layer(self, redis_url, key_prefix):
        layer = _redis_layer(key_prefix, hosts=[redis_url])
        yield layer
        layer.flush()
        layer.close()


class TestRedisLayerEncrypted(LayerConformance):
    @pytest.fixture
    def layer(self, redis_url, key_prefix):
        layer = _redis_layer(key_prefix, hosts=[redis_url], symmetric_encryption_keys=["a-key-of-enough-entropy"])
        yield layer
        layer.flush()
        layer.close()

    def test_message_too_large(self, layer):
        # Fernet adds a third; the limit is on the message itself, before encryption.
        super().test_message_too_large(layer)


class TestRedisLayerTwoShards(LayerConformance):
    @pytest.fixture
    def layer(self, redis_url, key_prefix):
        base = redis_url.rsplit("/", 1)[0]
        layer = _redis_layer(key_prefix, hosts=[f"{base}/0", f"{base}/1"])
        assert len(layer.shards) == 2
        yield layer
        layer.flush()
        layer.close()


class TestRedisLayerSentinel(LayerConformance):
    """A master found through 3 sentinels (with a replica), started once for the whole run."""

    @pytest.fixture
    def layer(self, key_prefix):
        layer = _redis_layer(key_prefix, hosts=[shared_setup().url()])
        yield layer
        layer.flush()
        layer.close()


class TestRedisLayerCluster(LayerConformance):
    """A 3-master/3-replica Redis Cluster (48 buckets of slots as shards), started once for the whole run."""

    @pytest.fixture
    def layer(self, key_prefix):
        layer = _redis_layer(key_prefix, hosts=[cluster_setup().url()])
        assert len(layer.shards) == 48
        yield layer
        layer.flush()
        layer.close()
