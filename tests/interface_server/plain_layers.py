"""A Redis layer without the `leases` extension, for tests of the server's plain disconnect sends.

With leases the server sends a disconnect with `lease_release` (uncapped);
without, with `send`, which a full `websocket.disconnect` refuses: the path
the sender retries.
"""

from __future__ import annotations

import os

from channels_core.layers import RedisChannelLayer

from .layers import layer_options


class NoLeasesRedisLayer(RedisChannelLayer):
    extensions = [name for name in RedisChannelLayer.extensions if name != "leases"]


redis_layer = (
    NoLeasesRedisLayer(
        hosts=[os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")],
        prefix=os.environ["TEST_LAYER_PREFIX"],
        **layer_options(),
    )
    if "TEST_LAYER_PREFIX" in os.environ
    else None
)
