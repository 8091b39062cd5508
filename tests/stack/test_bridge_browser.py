"""The JavaScript WebSocketBridge in headless Chromium against the real interface server and worker."""

from __future__ import annotations

import pytest

from tests.interface_server.harness import ServerProcess


def open_bridge(page, stack, module: bool = False, options: str = "{}") -> str:
    page.goto(stack.url + "/bridge/" + ("?module=1" if module else ""))
    page.wait_for("window.WebSocketBridgeClass !== undefined")
    url = page.evaluate(f"window.start('/ws/bridge/', {options})")
    page.wait_for("window.bridge.socket.readyState === 1")
    return url


def echo_round_trip(page, marker: int) -> None:
    page.evaluate(f"window.bridge.send({{n: {marker}}})")
    page.wait_for(f"window.received.some(r => r.default && r.default.n === {marker} && r.stream === null)")
    page.evaluate(f"window.bridge.stream('s1').send({{m: {marker}}})")
    page.wait_for(f"window.received.some(r => r.s1 && r.s1.m === {marker} && r.stream === 's1')")


@pytest.mark.parametrize("module", [False, True], ids=["script-tag", "es-module"])
def test_listen_send_demultiplex_and_stream_send(debug_stack, browser, module):
    page = browser.page()
    url = open_bridge(page, debug_stack, module=module)
    assert url == debug_stack.ws_url + "/ws/bridge/"  # resolved from the page, ws:// for http://
    echo_round_trip(page, 1)
    # A frame for a stream nobody demultiplexes reaches no callback; the default one only gets plain frames.
    page.evaluate("window.bridge.stream('other').send({x: 1}); window.bridge.send({after: true})")
    page.wait_for("window.received.some(r => r.default && r.default.after)")
    assert page.evaluate("window.received.filter(r => JSON.stringify(r).includes('\"x\"')).length") == 0
    assert page.console_errors() == []


def test_the_bridge_reconnects_after_the_server_restarts(debug_stack, browser, tmp_path):
    page = browser.page()
    open_bridge(page, debug_stack, options="{minReconnectionDelay: 200, maxReconnectionDelay: 500}")
    echo_round_trip(page, 1)
    port = debug_stack.server.port
    debug_stack.server.stop()
    page.wait_for("window.bridge.socket.readyState === 3")
    page.evaluate("window.bridge.send({queued: true})")  # sent while down: waits for the reconnection
    debug_stack.server = ServerProcess("tests.project.asgi:channel_layer", [], env=debug_stack.env, port=port).start()
    page.wait_for("window.bridge.socket.readyState === 1", timeout=20)
    page.wait_for("window.received.some(r => r.default && r.default.queued)")
    echo_round_trip(page, 2)
    page.screenshot(tmp_path / "bridge.png")
    assert (tmp_path / "bridge.png").stat().st_size > 1000


def test_the_bridge_gives_up_after_max_retries(debug_stack, browser):
    page = browser.page()
    open_bridge(page, debug_stack, options="{minReconnectionDelay: 100, maxReconnectionDelay: 100, maxRetries: 2}")
    debug_stack.server.stop()
    page.wait_for("window.bridge.socket.gaveUp === true", timeout=20)
    assert page.evaluate("window.bridge.socket.retries") == 2
    message = page.evaluate("(() => { try { window.bridge.send({late: 1}); } catch (e) { return e.message; } })()")
    assert "closed" in message


def test_using_the_bridge_before_connect_says_so(debug_stack, browser):
    page = browser.page()
    page.goto(debug_stack.url + "/bridge/")
    message = page.evaluate(
        "(() => { try { new channels.WebSocketBridge().listen(() => {}); } catch (e) { return e.message; } })()"
    )
    assert message == "WebSocketBridge.listen(): call connect() first"
