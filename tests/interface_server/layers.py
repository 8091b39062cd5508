"""Channel layers for interface-server subprocesses under test.

The server imports one of these by path (`tests.interface_server.layers:redis_layer`);
its settings come from the environment the test gives the subprocess, so the
test can build the same layer and play the worker.
"""

from __future__ import annotations

import json
import os

from channels_core.layers import RedisChannelLayer


def layer_options() -> dict:
    return json.loads(os.environ.get("TEST_LAYER_OPTIONS", "{}"))


def make_redis_layer() -> RedisChannelLayer:
    return RedisChannelLayer(
        hosts=[os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")],
        prefix=os.environ.get("TEST_LAYER_PREFIX", "asgi:"),
        **layer_options(),
    )


redis_layer = make_redis_layer() if "TEST_LAYER_PREFIX" in os.environ else None
