"""The WebSocketBridge in headless Chromium with WebSockets unavailable: Server-Sent Events and long-polling.

A script that runs before the page's own (`Page.addScriptToEvaluateOnNewDocument`)
removes `WebSocket` (or makes it throw, as a blocked one would) and, for
long-polling, `EventSource`; the unchanged test project (interface-server,
runworker, its `/ws/bridge/` echo consumer and `@resume_groups` history
consumer) serves the page. The bridge must fall back by itself, say which
transport it uses, echo through the real worker, and resume a group stream
over SSE after the server restarts.
"""

from __future__ import annotations

import json

import pytest

from channels_core.layers import RedisChannelLayer
from tests.interface_server.harness import ServerProcess

NO_WEBSOCKET = "delete window.WebSocket;"
BLOCKED = """
window.WebSocket = function () { throw new DOMException("blocked by the test", "SecurityError"); };
delete window.EventSource;
"""


def page_without(browser, stack, script: str, module: bool = False):
    page = browser.page()
    page.call("Page.addScriptToEvaluateOnNewDocument", source=script)
    page.goto(stack.url + "/bridge/" + ("?module=1" if module else ""))
    page.wait_for("window.WebSocketBridgeClass !== undefined")
    return page


def echo_round_trip(page, marker: int) -> None:
    page.evaluate(f"window.bridge.send({{n: {marker}, text: 'h\\u00e9\\nllo'}})")
    page.wait_for(f"window.received.some(r => r.default && r.default.n === {marker} && r.stream === null)")
    assert page.evaluate(f"window.received.find(r => r.default && r.default.n === {marker}).default.text") == "hé\nllo"
    page.evaluate(f"window.bridge.stream('s1').send({{m: {marker}}})")
    page.wait_for(f"window.received.some(r => r.s1 && r.s1.m === {marker} && r.stream === 's1')")


@pytest.mark.parametrize(
    "script,transport,module",
    [(NO_WEBSOCKET, "sse", False), (BLOCKED, "poll", True)],
    ids=["no-websocket-sse", "blocked-websocket-poll"],
)
def test_the_bridge_falls_back_and_echoes_through_the_worker(debug_stack, browser, script, transport, module):
    page = page_without(browser, debug_stack, script, module)
    assert page.evaluate("typeof window.WebSocket === 'function' ? 'blocked' : 'none'") == (
        "blocked" if transport == "poll" else "none"
    )
    page.evaluate(
        "window.opens = []; window.start('/ws/bridge/', {minReconnectionDelay: 200});"
        "window.bridge.socket.addEventListener('open', e => window.opens.push(e.transport))"
    )
    page.wait_for("window.bridge.socket.readyState === 1")
    assert page.evaluate("window.bridge.transport") == transport
    assert page.evaluate("window.opens") == [transport]
    for marker in range(1, 4):
        echo_round_trip(page, marker)
    # A burst: frames leave in order through the numbered POSTs, and all come back.
    page.evaluate("for (let i = 0; i < 50; i++) window.bridge.send({burst: i})")
    page.wait_for("window.received.filter(r => r.default && r.default.burst !== undefined).length === 50")
    output = debug_stack.server.output()
    assert "WSCONNECT /ws/bridge/" in output
    page.evaluate("window.bridge.socket.close()")
    debug_stack.server.process.wait_for("WSDISCONNECT /ws/bridge/", timeout=10)
    assert page.console_errors() == []


def test_the_bridge_resumes_a_group_stream_over_sse_after_the_server_restarts(
    debug_stack, browser, redis_url, key_prefix
):
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, group_history={"hist-*": {"size": 100, "ttl": 300}})
    try:
        page = page_without(browser, debug_stack, NO_WEBSOCKET)
        options = "{minReconnectionDelay: 200, maxReconnectionDelay: 500, fallbackTransports: ['sse']}"
        # In one turn of the page's event loop: the status cannot arrive before the callback is set.
        page.evaluate(
            f"window.statuses = []; window.start('/history/r1/', {options});"
            "window.bridge.resumed(s => window.statuses.push(s))"
        )
        page.wait_for("window.statuses.length === 1")
        first = page.evaluate("window.statuses[0]")
        assert page.evaluate("window.bridge.transport") == "sse"
        for n in range(1, 4):
            layer.send_group("hist-r1", {"text": json.dumps({"n": n})})
        page.wait_for("window.received.some(r => r.default && r.default.n === 3)")

        port = debug_stack.server.port
        debug_stack.server.stop()
        page.wait_for("window.bridge.socket.readyState === 3")
        for n in range(4, 9):  # while the page is cut off: only the history has them
            layer.send_group("hist-r1", {"text": json.dumps({"n": n})})
        debug_stack.server = ServerProcess("tests.project.asgi:channel_layer", [], env=debug_stack.env, port=port)
        debug_stack.server.start()
        page.wait_for("window.statuses.length === 2", timeout=20)
        assert page.evaluate("window.bridge.transport") == "sse"
        assert page.evaluate("window.statuses[1]") == {
            "group": "hist-r1",
            "epoch": first["epoch"],
            "offset": 8,
            "recovered": True,
        }
        # The positions went back on the SSE request's URL, as they would on the WebSocket's.
        assert "since=hist-r1%3A" in page.evaluate("window.bridge.socket.ws._source.url")
        layer.send_group("hist-r1", {"text": json.dumps({"n": 9})})
        page.wait_for("window.received.some(r => r.default && r.default.n === 9)")
        got = page.evaluate("window.received.filter(r => r.default && r.default.n !== undefined).map(r => r.default.n)")
        assert got == list(range(1, 10))  # every one, in order, once
        assert page.console_errors() == []
    finally:
        layer.flush()
        layer.close()


def test_long_polling_reconnects_after_the_server_restarts_and_sends_what_was_queued(debug_stack, browser):
    page = page_without(browser, debug_stack, BLOCKED)
    page.evaluate("window.start('/ws/bridge/', {minReconnectionDelay: 200, maxReconnectionDelay: 500})")
    page.wait_for("window.bridge.socket.readyState === 1")
    echo_round_trip(page, 1)
    port = debug_stack.server.port
    debug_stack.server.stop()
    page.wait_for("window.bridge.socket.readyState === 3", timeout=20)
    page.evaluate("window.bridge.send({queued: true})")  # sent while down: waits for the reconnection
    debug_stack.server = ServerProcess("tests.project.asgi:channel_layer", [], env=debug_stack.env, port=port)
    debug_stack.server.start()
    page.wait_for("window.received.some(r => r.default && r.default.queued)", timeout=30)
    assert page.evaluate("window.bridge.transport") == "poll"
    assert page.evaluate("window.bridge.socket.retries") == 0
    echo_round_trip(page, 2)
    assert page.console_errors() == []


def test_allowed_hosts_only_accepts_the_page_over_sse(debug_stack, browser):
    """A same-origin EventSource sends no Origin; the server adds the page's (Sec-Fetch-Site: same-origin), so the
    1.x Origin validator on /sess/origin/ accepts it as it accepts the page's WebSocket."""
    page = page_without(browser, debug_stack, NO_WEBSOCKET)
    page.evaluate(
        "window.raw = []; window.start('/sess/origin/', {});"
        "window.bridge.socket.addEventListener('message', e => window.raw.push(e.data))"
    )
    page.wait_for("window.raw.length === 1")
    assert page.evaluate("window.raw") == ["origin ok"]
    assert page.evaluate("window.bridge.transport") == "sse"


def test_a_plain_eventsource_resumes_a_group_stream_with_last_event_id(debug_stack, browser, redis_url, key_prefix):
    """No bridge: the page's own EventSource reconnects by itself after the server restarts and sends
    Last-Event-ID (the history positions of the last frame's id:); the server turns it into since=, and
    @resume_groups replays what the page missed."""
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, group_history={"hist-*": {"size": 100, "ttl": 300}})
    try:
        page = browser.page()
        page.goto(debug_stack.url + "/bridge/")
        page.evaluate(
            """window.got = []; window.ids = [];
            window.es = new EventSource('/_channels/sse/history/r1/');
            window.es.onmessage = (e) => {
              const frame = JSON.parse(JSON.parse(e.data).text || "{}");
              if (frame.text) window.got.push(JSON.parse(frame.text).n);
              window.ids.push(e.lastEventId);
            };"""
        )
        page.wait_for("window.ids.length === 1")  # the join's status frame: the position to resume from
        assert page.evaluate("window.ids[0]").startswith("hist-r1:")
        for n in range(1, 4):
            layer.send_group("hist-r1", {"text": json.dumps({"n": n})})
        page.wait_for("window.got.length === 3")
        assert page.evaluate("window.ids[window.ids.length - 1]").endswith(":3")

        port = debug_stack.server.port
        debug_stack.server.stop()
        for n in range(4, 9):  # while the page is cut off: only the history has them
            layer.send_group("hist-r1", {"text": json.dumps({"n": n})})
        debug_stack.server = ServerProcess("tests.project.asgi:channel_layer", [], env=debug_stack.env, port=port)
        debug_stack.server.start()
        page.wait_for("window.got.length === 8", timeout=30)
        layer.send_group("hist-r1", {"text": json.dumps({"n": 9})})
        page.wait_for("window.got.length === 9")
        assert page.evaluate("window.got") == list(range(1, 10))  # every one, in order, once
        assert page.evaluate("window.ids[window.ids.length - 1]").endswith(":9")
    finally:
        layer.flush()
        layer.close()
