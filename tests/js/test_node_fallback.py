"""The bridge's fallbacks in Node.

js/test/fallback.test.mjs: scripted EventSource, fetch and WebSockets (which transport when, and each
one's wire protocol); js/test/fallback-server.test.mjs: long-polling against a real interface-server and
runworker, WebSockets blocked. Chromium runs both fallbacks in tests/stack/test_fallback_browser.py.
"""

from __future__ import annotations

from tests.js.test_node_client import node, run_node
from tests.stack.harness import Stack


def test_fallback_choice_and_wire_protocol_with_scripted_transports():
    output = run_node([node(), "--test", "--test-reporter=tap", "js/test/fallback.test.mjs"])
    assert "# fail 0" in output and "# pass 6" in output, output


def test_bridge_long_polls_a_real_server_when_websockets_are_blocked(redis_url, key_prefix, tmp_path):
    stack = Stack(redis_url, key_prefix, tmp_path)
    try:
        stack.start_server()
        stack.start_worker()
        output = run_node(
            [node(), "--test", "--test-reporter=tap", "js/test/fallback-server.test.mjs"],
            env={"BRIDGE_TEST_WS": stack.ws_url},
        )
        assert "# fail 0" in output and "# pass 1" in output, output
        assert "WSCONNECT /ws/bridge/" in stack.server.output()
    finally:
        stack.stop()
