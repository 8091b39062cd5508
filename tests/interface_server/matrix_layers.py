"""The channel layer of `test_layers_matrix.py`'s interface-server subprocess, chosen by URL.

`interface-server tests.interface_server.matrix_layers:channel_layer` builds
`channels_core.layers.layer_url.from_url($TEST_MATRIX_URL, prefix=$TEST_MATRIX_PREFIX,
**$TEST_MATRIX_OPTIONS)`: the test builds the same layer and plays the worker.
"""

from __future__ import annotations

import json
import os

from channels_core.layers.layer_url import from_url


def make_layer():
    return from_url(
        os.environ["TEST_MATRIX_URL"],
        prefix=os.environ["TEST_MATRIX_PREFIX"],
        **json.loads(os.environ.get("TEST_MATRIX_OPTIONS", "{}")),
    )


channel_layer = make_layer() if "TEST_MATRIX_URL" in os.environ else None
