"""The RabbitMQ channel layer (AMQP 0-9-1 through pika); see `.layer`."""

from .layer import RabbitMQChannelLayer, RabbitmqChannelLayer

__all__ = ["RabbitMQChannelLayer", "RabbitmqChannelLayer"]
