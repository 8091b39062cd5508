"""The conformance suite against the RabbitMQ layer (a broker on 127.0.0.1:5672, `$RABBITMQ_URL` to change it)."""

from __future__ import annotations

import os

import pytest

from channels_core.layers.rabbitmq import RabbitMQChannelLayer

from .conformance import LayerConformance

SETTINGS = {"expiry": 1, "group_expiry": 2, "capacity": 5}
URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


class TestRabbitMQLayer(LayerConformance):
    @pytest.fixture
    def layer(self, key_prefix):
        layer = RabbitMQChannelLayer(URL, prefix=key_prefix, **SETTINGS)
        yield layer
        layer.flush()
        layer.close()
