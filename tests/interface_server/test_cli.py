"""The `interface-server` command line: usage errors, $PORT, --help, --version, --ws-protocol."""

from __future__ import annotations

import importlib.metadata
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from interface_server import cli

from .harness import ROOT, free_port, http_request, receive
from .ws_support import connect_in_background

LAYER = "tests.interface_server.layers:redis_layer"


def run_cli(*args: str, env: dict | None = None, pythonpath: str = str(ROOT)) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("PORT", "TEST_LAYER_PREFIX")}
    full_env.update(PYTHONPATH=pythonpath, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "interface_server", *args],
        cwd=ROOT,
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_usage_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("interface-server: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args, env, fragments",
    [
        (["no_such_module_xyz:channel_layer"], {}, ["no_such_module_xyz"]),
        (["tests.interface_server.layers:no_such_attribute"], {"TEST_LAYER_PREFIX": "x:"}, ["no_such_attribute"]),
        (["json:dumps"], {}, ["json:dumps", "not a channel layer"]),
        ([LAYER], {}, ["not a channel layer"]),  # the attribute is None without TEST_LAYER_PREFIX
        (["tests.interface_server.layers"], {}, ["module.path:attribute"]),
        ([LAYER, "--http-timeout", "0"], {"TEST_LAYER_PREFIX": "x:"}, ["--http-timeout"]),
        ([LAYER, "--shutdown-grace", "-1"], {"TEST_LAYER_PREFIX": "x:"}, ["--shutdown-grace"]),
        ([LAYER], {"TEST_LAYER_PREFIX": "x:", "PORT": "abc"}, ["PORT", "abc"]),
        ([LAYER, "--fd", "97"], {"TEST_LAYER_PREFIX": "x:"}, ["--fd 97"]),
        ([LAYER, "--fd", "0"], {"TEST_LAYER_PREFIX": "x:"}, ["--fd 0"]),
        ([LAYER, "--port", "abc"], {}, ["--port", "abc"]),
        ([], {}, ["channel_layer"]),
        ([LAYER, "--no-such-option"], {}, ["--no-such-option"]),
        (["--ws-protocol", "chat"], {}, ["channel_layer"]),
        (["--ws-protocol", "a:b", "chat", LAYER], {"TEST_LAYER_PREFIX": "x:"}, ["--ws-protocol", "'a:b'"]),
        ([LAYER, "--ws-protocol", "bad name"], {"TEST_LAYER_PREFIX": "x:"}, ["--ws-protocol", "'bad name'"]),
    ],
    ids=[
        "unimportable-module",
        "missing-attribute",
        "not-a-layer",
        "attribute-is-none",
        "no-colon",
        "http-timeout-0",
        "negative-grace",
        "bad-PORT",
        "fd-not-open",
        "fd-not-a-socket",
        "port-not-a-number",
        "no-layer",
        "unknown-option",
        "ws-protocol-without-layer",
        "ws-protocol-not-a-token",
        "ws-protocol-with-space",
    ],
)
def test_usage_errors_exit_2_with_one_line(args, env, fragments):
    assert_usage_error(run_cli(*args, env=env), *fragments)


def test_import_error_with_multiline_message_is_still_one_line(tmp_path):
    (tmp_path / "broken_layer_mod.py").write_text('raise RuntimeError("first line\\nsecond line")\n')
    result = run_cli("broken_layer_mod:layer", pythonpath=f"{ROOT}{os.pathsep}{tmp_path}")
    assert_usage_error(result, "broken_layer_mod", "first line", "second line")


def test_layer_constructor_failure_is_a_usage_error(tmp_path):
    (tmp_path / "bad_options_mod.py").write_text(
        "from channels_core.layers import RedisChannelLayer\nlayer = RedisChannelLayer(prefix='')\n"
    )
    result = run_cli("bad_options_mod:layer", pythonpath=f"{ROOT}{os.pathsep}{tmp_path}")
    assert_usage_error(result, "bad_options_mod")


def test_help():
    result = run_cli("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: interface-server")
    for option in (
        "--port",
        "--bind",
        "--unix-socket",
        "--fd",
        "--endpoint",
        "--http-timeout",
        "--root-path",
        "--proxy-headers",
        "--max-request-body-size",
        "--shutdown-grace",
    ):
        assert option in result.stdout


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith(f"interface-server {importlib.metadata.version('channels-core')} (Python "), line
    assert "Twisted " in line and "Autobahn " in line and "h11" in line
    assert result.stderr == ""


def test_version_when_the_distribution_is_not_installed(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert cli.version_line().startswith("interface-server unknown (channels-core is not installed")


def test_ws_protocol_before_the_layer_path_does_not_swallow_it(start_server, worker_layer):
    """`--ws-protocol` takes several values (daphne's spelling) and repeats; the layer path may follow it."""
    port = free_port()
    # The harness puts its layer_path first: here that is the option, so the command line reads
    # `interface-server --ws-protocol chat.v2 --ws-protocol chat.v1 <layer> -p <port>`.
    server = start_server(
        "chat.v2",
        "--ws-protocol",
        "chat.v1",
        LAYER,
        "-p",
        str(port),
        layer_path="--ws-protocol",
        port=port,
        listen=False,
    )
    for offered, chosen in ((["chat.v1"], "chat.v1"), (["other", "chat.v2"], "chat.v2"), (["other"], None)):
        future = connect_in_background(server.ws_url + "/chat", subprotocols=offered)
        message = receive(worker_layer, "websocket.connect")[1]
        worker_layer.send(message["reply_channel"], {"accept": True})
        with future.result(10) as ws:
            assert ws.subprotocol == chosen


def test_port_from_environment(start_server, worker_layer):
    port = free_port()
    server = start_server(env={"PORT": str(port)}, port=port, listen=False)
    assert f"Listening on tcp:port={port}:interface=127.0.0.1" in server.output()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(http_request, port, "GET", "/from-env")
        _, message = receive(worker_layer, "http.request")
        worker_layer.send(message["reply_channel"], {"status": 200, "content": b"env port"})
        assert future.result(10).body == b"env port"
    assert message["server"] == ["127.0.0.1", port]


def test_port_option_beats_environment(start_server):
    env_port = free_port()
    server = start_server(env={"PORT": str(env_port)})
    assert f"Listening on tcp:port={server.port}:" in server.output()
    assert f"tcp:port={env_port}" not in server.output()


def test_busy_port_exits_1(redis_url):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_cli(LAYER, "-p", str(port), env={"TEST_LAYER_PREFIX": "busy:", "TEST_REDIS_URL": redis_url})
    assert result.returncode == 1
    assert "Cannot listen" in result.stdout + result.stderr
