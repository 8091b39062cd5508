"""`allowed_hosts_only` (Django's ALLOWED_HOSTS) with the Origin headless Chromium really sends.

The test project's `/sess/origin/` connect consumer is decorated with
`allowed_hosts_only`; ALLOWED_HOSTS is 127.0.0.1, localhost and testserver.
A page on http://127.0.0.1:P opens its socket; the same page on
http://127.0.0.2:P (loopback too, but not an allowed host) is refused
with 403 by the worker, so the consumer never runs.
"""

from __future__ import annotations

import pytest

from tests.interface_server.test_allowed_origins import handshake
from tests.support.browser import CHROMIUM, Browser
from tests.support.pages import TwoOrigins, socket_outcome


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
def test_allowed_hosts_only_with_a_real_browser_origin(stack):
    stack.start_server()
    stack.start_worker()
    ws_url = f"{stack.ws_url}/sess/origin/"
    with TwoOrigins() as port, Browser() as browser:
        page = browser.page()
        assert socket_outcome(page, f"http://127.0.0.1:{port}/", ws_url) == "open"
        assert socket_outcome(page, f"http://127.0.0.2:{port}/", ws_url) == "closed 1006"
        assert socket_outcome(page, f"http://localhost:{port}/", ws_url) == "open"
    assert "Traceback" not in stack.worker_output(), stack.worker_output()
    assert "Traceback" not in stack.server.output()


RAW_CASES = [
    ((), 403),  # no Origin: a non-browser client
    (("null",), 403),  # sandboxed frame or file: page
    (("file://",), 403),
    (("http://evil.example",), 403),
    (("http://127.0.0.1.evil.example",), 403),
    (("http://127.0.0.2:8000",), 403),
    (("http://localhost:9999",), 101),  # ALLOWED_HOSTS names hosts: any port and scheme of an allowed host pass
    (("https://127.0.0.1",), 101),
    (("http://LOCALHOST",), 101),
]


def test_allowed_hosts_only_on_raw_sockets(stack):
    stack.start_server()
    stack.start_worker()
    for origins, status in RAW_CASES:
        assert handshake(stack.server.port, *origins, path="/sess/origin/") == status, origins
    assert "Traceback" not in stack.worker_output(), stack.worker_output()
