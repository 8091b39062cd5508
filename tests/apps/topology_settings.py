"""`tests.project.settings` with the channel layer taken from the environment.

The live processes of `tests/apps/test_ported_apps*.py` read this module:

- `$TEST_LAYER_HOSTS` (the topology classes): a JSON list, the Redis layer's
  `hosts` option (several entries: client-side shards; or a `redis+sentinel://`
  URL); the key prefix comes from `$TEST_LAYER_PREFIX`, as in `tests.project.settings`;
- `$TEST_LAYER_URL` (the other layers' classes): a URL for
  `channels_core.layers.layer_url` (`ipc://PREFIX`, `amqp://...`), the layer built
  by `url_layer` with `$TEST_LAYER_PREFIX`, the same in `CONFIG` and `TEST_CONFIG`.
"""

import json
import os

from channels_core.layers.layer_url import settings_from_url
from tests.project.settings import *  # noqa: F403
from tests.project.settings import CHANNEL_LAYERS


def url_layer(url: str, prefix: str) -> dict:
    """The CHANNEL_LAYERS entry of `url`: the test project's routing and options, one config for all processes."""
    entry = settings_from_url(
        url, routing=CHANNEL_LAYERS["default"]["ROUTING"], prefix=prefix, blocking_timeout=1, capacity=100
    )
    entry["TEST_CONFIG"] = dict(entry["CONFIG"])
    return entry


if os.environ.get("TEST_LAYER_HOSTS"):
    for _key in ("CONFIG", "TEST_CONFIG"):
        CHANNEL_LAYERS["default"][_key] = {
            **CHANNEL_LAYERS["default"][_key],
            "hosts": json.loads(os.environ["TEST_LAYER_HOSTS"]),
        }
if os.environ.get("TEST_LAYER_URL"):
    CHANNEL_LAYERS["default"] = url_layer(os.environ["TEST_LAYER_URL"], os.environ["TEST_LAYER_PREFIX"])
