"""The channel layer `benchmarks/interface_bench.py` hands its interface-server subprocess.

The server imports `interface_bench_layer:channel_layer` (with `benchmarks/` on
PYTHONPATH); the settings come from the environment the benchmark sets, so the
benchmark and its echo app build the very same layer. Every connection names
itself (CLIENT SETNAME) so the benchmark can tell whose Redis commands it sees.
"""

from __future__ import annotations

import json
import os

from channels_core.layers.redis import RedisChannelLayer

PREFIX_ENV = "IBENCH_LAYER_PREFIX"
URL_ENV = "IBENCH_REDIS_URL"
OPTIONS_ENV = "IBENCH_LAYER_OPTIONS"
NAME_ENV = "IBENCH_CLIENT_NAME"


def make_layer(url: str, prefix: str, client_name: str, options: dict | None = None) -> RedisChannelLayer:
    return RedisChannelLayer(
        hosts=[url], prefix=prefix, connection_kwargs={"client_name": client_name}, **(options or {})
    )


def layer_from_env() -> RedisChannelLayer:
    return make_layer(
        os.environ[URL_ENV],
        os.environ[PREFIX_ENV],
        os.environ.get(NAME_ENV, "ibench-interface-server"),
        json.loads(os.environ.get(OPTIONS_ENV, "{}")),
    )


channel_layer = layer_from_env() if PREFIX_ENV in os.environ else None
