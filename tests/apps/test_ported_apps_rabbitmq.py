"""The ported 1.x apps (`test_ported_apps.PortedAppsOnURL`) on the RabbitMQ layer (127.0.0.1:5672, or
`$RABBITMQ_URL`); the class's queues are deleted afterwards. The file name puts these tests in the
"rabbitmq" xdist group (tests/conftest.py)."""

from __future__ import annotations

import os

from .rabbitmq_cleanup import remove_prefix
from .test_ported_apps import PortedAppsOnURL

URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


class PortedAppsOnRabbitMQ(PortedAppsOnURL):
    __test__ = True

    @classmethod
    def url(cls, prefix: str) -> str:
        return URL

    @classmethod
    def remove(cls, prefix: str) -> None:
        remove_prefix(URL, prefix)

    def test_the_live_processes_share_the_rabbitmq_layer(self):
        from channels_core.asgi import channel_layers

        layer = channel_layers["default"].channel_layer
        self.assertEqual((type(layer).__name__, layer.prefix), ("RabbitMQChannelLayer", self.layer_prefix))
        self.assertIn("RabbitMQChannelLayer", self.live_server_output())  # the worker logs its layer's class
