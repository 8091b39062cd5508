"""The RabbitMQ channel layer (AMQP 0-9-1 through pika); see `.layer`.

pika is an extra (`pip install 'channels-core[rabbitmq]'`): this package
imports it only when the layer class is asked for, and then says what to
install if it is missing, so `channels_core.layers` can name the layer
without making pika a dependency of every install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["RabbitMQChannelLayer", "RabbitmqChannelLayer"]

if TYPE_CHECKING:
    from .layer import RabbitMQChannelLayer, RabbitmqChannelLayer


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from . import layer
    except ImportError as exc:
        if exc.name != "pika" and not (exc.name or "").startswith("pika."):
            raise
        raise ImportError(
            "The RabbitMQ channel layer needs pika: pip install 'channels-core[rabbitmq]' (or pika>=1.3)"
        ) from None
    return getattr(layer, name)
