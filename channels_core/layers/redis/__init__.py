"""The Redis channel layer and its parts (hosts, sharding, scripts, connections)."""

from .layer import RedisChannelLayer

__all__ = ["RedisChannelLayer"]
