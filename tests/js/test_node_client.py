"""The JavaScript package in js/: its built files are fresh, its TypeScript declarations match it, and
its Node tests pass against a real interface-server and runworker (js/test/interface-server.test.mjs).

The tests need `node` (18 or later, for `node --test`). Without it they skip on a developer's
machine and fail in CI (CI=true), where .ci/run installs Debian's nodejs.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.interface_server.harness import ServerProcess
from tests.stack.harness import Stack

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "js"


def node() -> str:
    """The node binary; a skip on a machine without one, a failure in CI."""
    path = shutil.which("node")
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("node is not installed: CI must install Debian's nodejs (see .ci/run)")
        pytest.skip("node is not installed (CI=true makes this a failure)")
    return path


def node_flags(binary: str) -> list[str]:
    """`--experimental-websocket` where it gives Node 20 its WebSocket; Node 22 has it anyway, 18 never."""
    probe = subprocess.run(
        [binary, "--experimental-websocket", "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"],
        capture_output=True,
        timeout=30,
    )
    return ["--experimental-websocket"] if probe.returncode == 0 else []


def run_node(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run node from the repository root; its output, or an assertion error with it. Test runs ask for the
    TAP reporter, whose "# pass N" lines the tests read (Node 23 and later default to another one)."""
    result = subprocess.run(
        args, cwd=ROOT, env=dict(os.environ, **(env or {})), capture_output=True, text=True, timeout=timeout
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{output}"
    return output


def test_built_files_are_the_build_of_the_source():
    """The static files Django serves and js/lib/ are what `node js/build.mjs` makes: nobody edited a copy."""
    run_node([node(), "js/build.mjs", "--check"])


def test_package_version_is_the_python_packages():
    """js/package.json and setup.cfg name the same version (the built files' banner carries it)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert json.loads((JS / "package.json").read_text())["version"] == config["metadata"]["version"]


def test_declarations_package_resolution_and_reconnection_logic():
    """js/index.d.ts declares every public method, field and option of the built classes, and no others;
    `import`, `require` and `/script` resolve by the package's name to the built files; the reconnection
    logic against scripted WebSockets (each way a connection fails, the retry limit, the growing wait)."""
    files = ["js/test/types.test.mjs", "js/test/package.test.mjs", "js/test/socket.test.mjs"]
    output = run_node([node(), "--test", "--test-reporter=tap", *files])
    assert "# fail 0" in output and "# pass 12" in output, output


class _Control(BaseHTTPRequestHandler):
    """POST /stop and /start: the Node test stops the interface-server and starts it again on its port
    (the server's `stack` attribute is the Stack)."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        stack = self.server.stack  # type: ignore[attr-defined]
        if self.path == "/stop":
            stack.server.stop()
        elif self.path == "/start":
            port = stack.server.port
            stack.server = ServerProcess("tests.project.asgi:channel_layer", [], env=stack.env, port=port).start()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet: pytest shows the Node output on failure
        pass


@pytest.fixture
def control_stack(redis_url, key_prefix, tmp_path) -> Iterator[tuple[Stack, str]]:
    """The test project's interface-server and runworker, and the URL of the control server that restarts it."""
    stack = Stack(redis_url, key_prefix, tmp_path)
    control = ThreadingHTTPServer(("127.0.0.1", 0), _Control)
    control.stack = stack  # type: ignore[attr-defined]
    thread = threading.Thread(target=control.serve_forever, daemon=True)
    try:
        stack.start_server()
        stack.start_worker()
        thread.start()
        yield stack, f"http://127.0.0.1:{control.server_address[1]}"
    finally:
        if thread.is_alive():
            control.shutdown()
        control.server_close()
        stack.stop()


def test_node_client_against_the_interface_server(control_stack):
    """Connect, JSON echo, demultiplex/stream, reconnection after a server restart; ES module and classic script."""
    stack, control_url = control_stack
    binary = node()
    output = run_node(
        [binary, *node_flags(binary), "--test", "--test-reporter=tap", "js/test/interface-server.test.mjs"],
        env={"BRIDGE_TEST_WS": stack.ws_url, "BRIDGE_TEST_CONTROL": control_url},
    )
    assert "# fail 0" in output, output
    # Every case ran: 3 per WebSocket (the mini client always, Node's own where it has one) + the classic script.
    runs = 3 * (2 if node_flags(binary) or _has_websocket(binary) else 1) + 1
    assert f"# pass {runs}" in output, output


def _has_websocket(binary: str) -> bool:
    probe = subprocess.run(
        [binary, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"], capture_output=True, timeout=30
    )
    return probe.returncode == 0
