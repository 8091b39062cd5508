"""Channel layers: the ASGI 1.0 contract and its backends.

Imports neither Django nor Twisted, so any Python process can use a layer.
"""

from .base import BaseChannelLayer
from .errors import ChannelFull, LayerConfigurationError, LayerConnectionError, MessageTooLarge
from .inmemory import InMemoryChannelLayer
from .ipc import IPCChannelLayer
from .layer_url import from_url, settings_from_url
from .redis import RedisChannelLayer, RedisClusterChannelLayer, RedisSentinelChannelLayer

_LAZY = {"RabbitMQChannelLayer": ".rabbitmq", "RabbitmqChannelLayer": ".rabbitmq"}
"""Names imported on first use: the RabbitMQ layer needs pika, an extra this package must not import.

Left out of `__all__` for the same reason: `from channels_core.layers import *` must not import pika.
"""


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module, __name__), name)


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
    "from_url",
    "settings_from_url",
]
