"""The Redis channel layer and its parts (hosts, sharding, scripts, connections)."""

from .cluster_layer import RedisClusterChannelLayer
from .layer import RedisChannelLayer
from .sentinel_layer import RedisSentinelChannelLayer

__all__ = ["RedisChannelLayer", "RedisClusterChannelLayer", "RedisSentinelChannelLayer"]
