"""`channel_layers`: which settings entry each alias's layer is built from, and saying so when it changes."""

from __future__ import annotations

import logging

from channels_core.asgi import ChannelLayerManager


def test_layers_come_from_config_until_use_test_config_switches_to_test_config(settings, caplog):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_core.layers.InMemoryChannelLayer",
            "ROUTING": [],
            "CONFIG": {"capacity": 5},
            "TEST_CONFIG": {"capacity": 7},
        },
        "other": {"BACKEND": "channels_core.layers.InMemoryChannelLayer", "ROUTING": [], "CONFIG": {"capacity": 3}},
    }
    assert ChannelLayerManager()["default"].capacity == 5
    manager = ChannelLayerManager()
    with caplog.at_level(logging.INFO, logger="channels_core"):
        manager.use_test_config()
    assert "built from TEST_CONFIG" in caplog.text
    assert manager.config_key == "TEST_CONFIG"
    assert manager["default"].capacity == 7
    assert manager["other"].capacity == 3  # no TEST_CONFIG: CONFIG
    assert manager["other"].setting == "CHANNEL_LAYERS['other']['CONFIG']"
