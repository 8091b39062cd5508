"""Interface-server SIGTERM with 500 WebSockets open, through the whole stack, with a real browser.

500 raw clients joined to the "notes" group (tests/project: joined on connect,
left on disconnect) and the `WebSocketBridge` in headless Chromium. On SIGTERM
every raw client gets a close frame 1001, the runworker consumes a
`websocket.disconnect` for each (the group empties), the server exits 0
within its grace period, and the bridge reconnects to a new server started
on the same port and echoes again.
"""

from __future__ import annotations

import re
import signal
import time

import pytest

from channels_core.layers import RedisChannelLayer
from tests.interface_server.harness import ServerProcess
from tests.support.browser import Browser
from tests.support.ws_cycles import HeldSockets

from .test_bridge_browser import echo_round_trip, open_bridge

SOCKETS = 500
GRACE = 10.0


def wait_until(predicate, timeout: float) -> float:
    """Poll `predicate` until true; returns the seconds it took (fails after `timeout`)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sigterm_closes_500_sockets_with_1001_each_disconnect_is_consumed_and_the_bridge_reconnects(
    stack, redis_url, key_prefix
):
    stack.env["TEST_DEBUG"] = "1"  # runworker serves the bridge's static files
    stack.env["TEST_LAYER_CAPACITY"] = "1000"
    server = stack.start_server("--shutdown-grace", str(GRACE))
    stack.start_worker()
    port = server.port
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix)
    with Browser() as browser:
        page = browser.page()
        open_bridge(page, stack, options="{minReconnectionDelay: 200, maxReconnectionDelay: 500}")
        echo_round_trip(page, 1)
        page.evaluate(
            "window.closeCodes = []; window.bridge.socket.addEventListener('close', e => closeCodes.push(e.code))"
        )
        held = HeldSockets("127.0.0.1", port, "/notes/", SOCKETS)
        wait_until(lambda: len(layer.group_channels("notes")) == SOCKETS, 20)

        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        codes = held.close_codes(timeout=GRACE)
        closed_in = time.monotonic() - started
        assert server.process.wait(GRACE + 5) == 0
        exited_in = time.monotonic() - started
        emptied_in = wait_until(lambda: layer.group_channels("notes") == [], 20)
        browser_codes = page.evaluate("window.closeCodes")

        stack.server = ServerProcess("tests.project.asgi:channel_layer", [], env=stack.env, port=port).start()
        reconnected_in = wait_until(lambda: page.evaluate("window.bridge.socket.readyState === 1"), 20)
        echo_round_trip(page, 2)
    layer.close()

    print(
        f"SIGTERM with {SOCKETS} WebSockets + the bridge: all closed in {closed_in:.2f}s, server exited in"
        f" {exited_in:.2f}s (grace {GRACE:g}s), group empty {emptied_in:.2f}s after that,"
        f" bridge reconnected {reconnected_in:.2f}s after the new server listened"
    )
    assert codes == [1001] * SOCKETS, {code: codes.count(code) for code in set(codes)}
    assert browser_codes[:1] == [1001], browser_codes
    assert exited_in < GRACE
    # the 500, the bridge, and any keep-alive connection the browser still holds from loading the page
    open_at_sigterm = int(re.search(r"Shutting down: (\d+) connections open", server.output()).group(1))
    assert SOCKETS + 1 <= open_at_sigterm <= SOCKETS + 7, open_at_sigterm
