"""Channel layers: the ASGI 1.0 contract and its backends.

Imports neither Django nor Twisted, so any Python process can use a layer.
"""

from .base import BaseChannelLayer
from .errors import ChannelFull, LayerConfigurationError, LayerConnectionError, MessageTooLarge
from .inmemory import InMemoryChannelLayer
from .ipc import IPCChannelLayer
from .redis import RedisChannelLayer, RedisClusterChannelLayer, RedisSentinelChannelLayer

__all__ = [
    "BaseChannelLayer",
    "ChannelFull",
    "IPCChannelLayer",
    "InMemoryChannelLayer",
    "LayerConfigurationError",
    "LayerConnectionError",
    "MessageTooLarge",
    "RedisChannelLayer",
    "RedisClusterChannelLayer",
    "RedisSentinelChannelLayer",
]
