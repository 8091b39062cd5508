"""`tests.project.settings` with the channel layer's servers taken from `$TEST_LAYER_HOSTS`.

The live processes of `tests/apps/test_ported_apps.py`'s topology classes read
this module: `$TEST_LAYER_HOSTS` is a JSON list, the layer's `hosts` option
(several entries: client-side shards; or a `redis+sentinel://` URL). The key
prefix comes from `$TEST_LAYER_PREFIX`, as in `tests.project.settings`.
"""

import json
import os

from tests.project.settings import *  # noqa: F403
from tests.project.settings import CHANNEL_LAYERS

if os.environ.get("TEST_LAYER_HOSTS"):
    for _key in ("CONFIG", "TEST_CONFIG"):
        CHANNEL_LAYERS["default"][_key] = {
            **CHANNEL_LAYERS["default"][_key],
            "hosts": json.loads(os.environ["TEST_LAYER_HOSTS"]),
        }
