"""A blank HTML page served on two loopback origins, so a real browser sends two different `Origin`s.

with TwoOrigins() as port:
    page.goto(f"http://127.0.0.1:{port}/")   # Origin: http://127.0.0.1:<port>
    page.goto(f"http://127.0.0.2:{port}/")   # Origin: http://127.0.0.2:<port> (also loopback on Linux)
"""

from __future__ import annotations

import http.server
import threading
from typing import Any

PAGE = b"<!doctype html><title>origin test</title>"

# Opens a WebSocket from the page; resolves to "open" or "closed <code>" (a refused handshake is 1006 to a page).
OPEN_SOCKET = """new Promise(resolve => {
    const ws = new WebSocket(%r);
    ws.onopen = () => { resolve("open"); ws.close(); };
    ws.onclose = (e) => resolve("closed " + e.code);
    setTimeout(() => resolve("timeout"), 8000);
})"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: Any) -> None:
        pass


class TwoOrigins:
    """The page on http://127.0.0.1:P and http://127.0.0.2:P; `with` yields P."""

    def __enter__(self) -> int:
        first = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
        port = first.server_address[1]
        self.servers = [first, http.server.ThreadingHTTPServer(("127.0.0.2", port), _Page)]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return port

    def __exit__(self, *exc: Any) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def socket_outcome(page: Any, page_url: str, ws_url: str) -> str:
    """Load `page_url` in the browser page, open a WebSocket to `ws_url` from it: "open" or "closed <code>"."""
    page.goto(page_url)
    return page.evaluate(OPEN_SOCKET % ws_url, timeout=15)
