"""The ported 1.x apps (`test_ported_apps.PortedAppsOnURL`) on the IPC layer: interface server, worker and
test process share /dev/shm under the class's prefix, and leave nothing there."""

from __future__ import annotations

from channels_core.layers.ipc.cleanup import flush_prefix, shared_objects

from .test_ported_apps import PortedAppsOnURL


class PortedAppsOnIPC(PortedAppsOnURL):
    __test__ = True

    @classmethod
    def url(cls, prefix: str) -> str:
        return f"ipc://{prefix}"

    @classmethod
    def remove(cls, prefix: str) -> None:
        flush_prefix(prefix)
        left = shared_objects(prefix)
        assert left == [], f"left in /dev/shm: {left}"

    def test_the_live_processes_share_the_ipc_layer(self):
        from channels_core.asgi import channel_layers

        layer = channel_layers["default"].channel_layer
        self.assertEqual((type(layer).__name__, layer.prefix), ("IPCChannelLayer", self.layer_prefix))
        self.assertIn("IPCChannelLayer", self.live_server_output())  # the worker logs its layer's class
