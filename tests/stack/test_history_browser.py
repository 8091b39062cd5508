"""Group history through the real WebSocketBridge in headless Chromium: resume after the server comes back.

The page joins /history/r1/ (its connect consumer is `@resume_groups("hist-{room}")`),
the test broadcasts on the layer, stops the interface server, broadcasts
more while the page is cut off, starts it again: the bridge reconnects with
`?since=`, gets exactly what it missed, in order, then live messages. With
the history lost meanwhile it is told `recovered: false`. WebSocket only
(`fallbackTransports: []`): resuming over the fallback transports is their tests' part.
"""

from __future__ import annotations

import json

import pytest

from channels_core.layers import RedisChannelLayer
from tests.interface_server.harness import ServerProcess

GROUP = "hist-r1"


@pytest.fixture
def layer(redis_url, key_prefix):
    layer = RedisChannelLayer(
        hosts=[redis_url], prefix=key_prefix, group_history={"hist-*": {"size": 1000, "ttl": 300}}
    )
    yield layer
    layer.close()


def numbers(page) -> list[int]:
    return page.evaluate("window.received.filter(r => r.default && r.default.n !== undefined).map(r => r.default.n)")


def restart(stack) -> None:
    port = stack.server.port
    stack.server = ServerProcess("tests.project.asgi:channel_layer", [], env=stack.env, port=port).start()


def test_the_bridge_resumes_a_group_stream_after_the_server_restarts(debug_stack, browser, layer):
    page = browser.page()
    page.goto(debug_stack.url + "/bridge/")
    page.wait_for("window.WebSocketBridgeClass !== undefined")
    # In one turn of the page's event loop: the status cannot arrive before the callback is set.
    page.evaluate(
        "window.statuses = [];"
        "window.start('/history/r1/', {minReconnectionDelay: 200, maxReconnectionDelay: 500, fallbackTransports: []});"
        "window.bridge.resumed(s => window.statuses.push(s))"
    )
    page.wait_for("window.statuses.length === 1")  # a new client: told the position, nothing to recover
    first = page.evaluate("window.statuses[0]")
    assert first["recovered"] is True and first["group"] == GROUP
    for n in range(1, 4):
        layer.send_group(GROUP, {"text": json.dumps({"n": n})})
    page.wait_for("window.received.some(r => r.default && r.default.n === 3)")

    debug_stack.server.stop()
    page.wait_for("window.bridge.socket.readyState === 3")
    for n in range(4, 9):  # while the page is cut off: only the history has them
        layer.send_group(GROUP, {"text": json.dumps({"n": n})})
    restart(debug_stack)
    page.wait_for("window.statuses.length === 2", timeout=20)
    status = page.evaluate("window.statuses[1]")
    assert status == {"group": GROUP, "epoch": first["epoch"], "offset": 8, "recovered": True}
    assert "since=hist-r1%3A" in page.evaluate("window.bridge.socket.ws.url")
    layer.send_group(GROUP, {"text": json.dumps({"n": 9})})  # live again
    page.wait_for("window.received.some(r => r.default && r.default.n === 9)")
    assert numbers(page) == list(range(1, 10))  # every one, in order, once
    assert page.evaluate("window.bridge.positions['hist-r1'].offset") == 9

    # The history lost while cut off (as after a Redis flush): the page is told, and learns the new epoch.
    debug_stack.server.stop()
    page.wait_for("window.bridge.socket.readyState === 3")
    client = layer.shards[0]
    client.execute("DEL", layer.keys.group_key(GROUP, 0) + b"#h", layer.keys.group_key(GROUP, 0) + b"#hm")
    layer.send_group(GROUP, {"text": json.dumps({"n": 100})})
    restart(debug_stack)
    page.wait_for("window.statuses.length === 3", timeout=20)
    lost = page.evaluate("window.statuses[2]")
    assert lost["recovered"] is False and lost["epoch"] != first["epoch"] and lost["offset"] == 1
    layer.send_group(GROUP, {"text": json.dumps({"n": 101})})
    page.wait_for("window.received.some(r => r.default && r.default.n === 101)")
    assert numbers(page)[-1] == 101 and 100 not in numbers(page)
    assert page.console_errors() == []
