"""`allowed_hosts_only` (Django's ALLOWED_HOSTS) with the Origin headless Chromium really sends.

The test project's `/sess/origin/` connect consumer is decorated with
`allowed_hosts_only`; ALLOWED_HOSTS is 127.0.0.1, localhost and testserver.
A page on http://127.0.0.1:P opens its socket; the same page on
http://127.0.0.2:P (loopback too, but not an allowed host) is refused
with 403 by the worker, so the consumer never runs.
"""

from __future__ import annotations

import pytest

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
