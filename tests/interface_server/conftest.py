"""Fixtures for interface-server tests: a server subprocess over Redis, and the layer to play the worker."""

from __future__ import annotations

import importlib.util

import pytest

from channels_core.layers import RedisChannelLayer

from .harness import ServerProcess, layer_env


@pytest.fixture
def worker_layer(redis_url, key_prefix):
    """The test's side of the channel layer: it plays the worker."""
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, blocking_timeout=1, capacity=1000)
    yield layer
    layer.flush()
    layer.close()


@pytest.fixture
def start_server(redis_url, key_prefix):
    """Start `interface-server tests.interface_server.layers:redis_layer` with extra arguments.

    Layer options (e.g. capacity) go in `layer_options`; file descriptors the server
    should inherit (for `--fd`) in `pass_fds`; every server is stopped afterwards.
    """
    servers = []

    def start(
        *args,
        layer_options=None,
        env=None,
        layer_path="tests.interface_server.layers:redis_layer",
        wait_for="Listening on",
        pass_fds=(),
        **kwargs,
    ):
        full_env = {"TEST_REDIS_URL": redis_url, **layer_env(key_prefix, **(layer_options or {})), **(env or {})}
        server = ServerProcess(layer_path, list(args), env=full_env, **kwargs)
        servers.append(server)
        return server.start(wait_for=wait_for, pass_fds=pass_fds)

    yield start
    for server in servers:
        server.stop()


H11_BUILDS = {"compiled": {}, "pure": {"INTERFACE_SERVER_PURE_H11": "1"}}


@pytest.fixture(params=sorted(H11_BUILDS))
def start_server_each_h11(request, start_server):
    """`start_server`, once on the compiled h11 build (`h11-mypyc`, when installed) and once on pure h11."""

    def start(*args, env=None, **kwargs):
        server = start_server(*args, env={**(env or {}), **H11_BUILDS[request.param]}, **kwargs)
        compiled = request.param == "compiled" and importlib.util.find_spec("h11_mypyc") is not None
        expected = "h11-mypyc " if compiled else "h11 "
        assert f"HTTP/1.1 parsing with {expected}" in server.output(), server.output()
        return server

    return start
