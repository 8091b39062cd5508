"""The access log: daphne's line format, written by the real server for HTTP and WebSocket."""

from __future__ import annotations

import io
import re
import time
import urllib.request

from websockets.sync.client import connect

from interface_server.access import AccessLogGenerator

from .harness import EchoWorker
from .ws_support import Worker

LINE = re.compile(r'^(\S+) - - \[\d\d/\w\w\w/\d{4}:\d\d:\d\d:\d\d\] "([^"]*)" (\S+) (\S+)$')


def test_access_log_lines_have_daphne_format():
    stream = io.StringIO()
    log = AccessLogGenerator(stream)
    log("http", "complete", {"client": "1.2.3.4:5", "method": "GET", "path": "/a", "status": 200, "size": 12})
    log("websocket", "connecting", {"client": "1.2.3.4:6", "path": "/ws"})
    log("websocket", "rejected", {"client": None, "path": "/ws"})
    parsed = [LINE.match(line).groups() for line in stream.getvalue().splitlines()]
    assert parsed == [
        ("1.2.3.4:5", "GET /a", "200", "12"),
        ("1.2.3.4:6", "WSCONNECTING /ws", "-", "-"),
        ("-", "WSREJECT /ws", "-", "-"),
    ]


def test_server_writes_the_access_log(start_server, worker_layer, tmp_path):
    path = tmp_path / "access.log"
    server = start_server("--access-log", str(path))
    with Worker(worker_layer), EchoWorker(worker_layer):
        with urllib.request.urlopen(server.url + "/hello?x=1", timeout=5) as response:
            body = response.read()
        with connect(server.ws_url + "/socket", open_timeout=5) as ws:
            ws.send("ping")
            ws.recv(timeout=5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "WSDISCONNECT" not in path.read_text():
            time.sleep(0.05)
    requests = [LINE.match(line).group(2, 3, 4) for line in path.read_text().splitlines()]
    assert ("GET /hello", "200", str(len(body))) in requests
    assert [r[0] for r in requests if r[0].startswith("WS")] == [
        "WSCONNECTING /socket",
        "WSCONNECT /socket",
        "WSDISCONNECT /socket",
    ]
