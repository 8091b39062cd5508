"""Clients of the fallback transports (SSE + POST, long-polling) over real sockets, for the tests.

They speak the wire protocol of docs/topics/fallback-transports.md with
`http.client`, as the WebSocketBridge does with EventSource and fetch.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from concurrent.futures import Future
from typing import Any

PREFIX = "/_channels/"


def request(
    port: int, method: str, path: str, body: Any = None, headers: dict | None = None, timeout: float = 10.0
) -> tuple[int, dict, bytes]:
    """One request on a fresh connection: (status, headers lowercased, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def in_background(fn: Any, *args: Any, **kwargs: Any) -> Future:
    """Run `fn` in a thread (a request held by the server until the test plays the worker)."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # the test sees it from result()
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


class SSEClient:
    """`GET {prefix}sse{path}`: the request is sent at once; `opened()` waits for the response head."""

    def __init__(self, port: int, path: str, headers: dict | None = None, timeout: float = 10.0) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", PREFIX + "sse" + path, headers={"Accept": "text/event-stream", **(headers or {})})
        self.response: http.client.HTTPResponse | None = None
        self.session: str | None = None

    def opened(self) -> int:
        """The status; for 200, reads the `session` event and keeps the session id."""
        self.response = self.conn.getresponse()
        if self.response.status == 200:
            first = self.next_event()
            assert first["event"] == "session", first
            self.session = first["data"]["session"]
        return self.response.status

    def next_event(self) -> dict:
        """The next event: {"event", "id", "data" (parsed JSON)}; comments (pings) are skipped. EOFError at the end."""
        event: dict = {"event": "message", "id": None, "data": None}
        lines = []
        while True:
            line = self.response.readline()
            if not line:
                raise EOFError("the event stream ended")
            line = line.rstrip(b"\n")
            if not line:
                if lines:
                    break
                continue
            if line.startswith(b":"):
                continue
            lines.append(line)
        data = []
        for line in lines:
            name, _, value = line.partition(b": ")
            if name == b"data":
                data.append(value)
            elif name == b"id":
                event["id"] = value.decode()
            elif name == b"event":
                event["event"] = value.decode()
        event["data"] = json.loads(b"\n".join(data))
        return event

    def rest(self) -> bytes:
        """Everything until the server ends the stream."""
        return self.response.read()

    def vanish(self) -> None:
        """Drop the TCP connection without a word (a closed laptop, a killed tab)."""
        sock = self.conn.sock
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()
        self.conn.close()

    def send(self, port: int, seq: int, frames: list, **kwargs: Any) -> int:
        return request(port, "POST", f"{PREFIX}s/{self.session}/send", {"seq": seq, "frames": frames}, **kwargs)[0]

    def close(self, port: int, code: int | None = None) -> int:
        body = {} if code is None else {"code": code}
        return request(port, "POST", f"{PREFIX}s/{self.session}/close", body)[0]


def poll(port: int, session: str, ack: int = 0, timeout: float = 40.0) -> tuple[int, Any]:
    status, _, body = request(port, "GET", f"{PREFIX}s/{session}/poll?ack={ack}", timeout=timeout)
    return status, json.loads(body) if status == 200 else body
