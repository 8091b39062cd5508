"""The WebSocketBridge's group history logic in Node (js/test/history.test.mjs): positions, ?since=, resumed()."""

from __future__ import annotations

from tests.js.test_node_client import node, run_node


def test_bridge_history_positions_since_and_resumed():
    output = run_node([node(), "--test", "--test-reporter=tap", "js/test/history.test.mjs"])
    assert "# fail 0" in output and "# pass 1" in output, output
