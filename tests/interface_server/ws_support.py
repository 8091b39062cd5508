"""Helpers for the WebSocket tests: real clients, a raw-socket client, and the worker's side.

The tests run the real server subprocess (`start_server`) and play the
worker on the Redis layer (`worker_layer`): they receive on
`websocket.connect/receive/disconnect` and reply on `reply_channel`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from .harness import receive as receive_with_channel

WS_CHANNELS = ["websocket.connect", "websocket.receive", "websocket.disconnect"]
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- the worker's side --------------------------------------------------------------------


def receive(layer: Any, channels: str | list[str], timeout: float = 5.0) -> dict:
    """The next message on `channels`, waiting up to `timeout` seconds (fails the test otherwise)."""
    return receive_with_channel(layer, channels, timeout)[1]


def drain(layer: Any, channel: str, settle: float = 0.5) -> list[dict]:
    """Everything waiting on `channel` after `settle` seconds (non-blocking reads)."""
    if settle:
        time.sleep(settle)
    out = []
    while True:
        got, message = layer.receive([channel], block=False)
        if got is None:
            return out
        out.append(message)


def disconnects_for(layer: Any, reply_channel: str, settle: float = 0.5) -> list[dict]:
    """The `websocket.disconnect` messages waiting for one connection (others are dropped)."""
    return [m for m in drain(layer, "websocket.disconnect", settle) if m["reply_channel"] == reply_channel]


def send_retry(layer: Any, channel: str, message: dict, timeout: float = 5.0) -> None:
    """Send, retrying while the channel is full (the ASGI rule for replies)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            layer.send(channel, message)
            return
        except layer.ChannelFull:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class Worker(threading.Thread):
    """A worker thread: accepts every connect, optionally echoes every receive, records everything."""

    def __init__(self, layer: Any, echo: bool = True, connect_reply: dict | None = None) -> None:
        super().__init__(name="test-worker", daemon=True)
        self.layer = layer
        self.echo = echo
        self.connect_reply = {"accept": True} if connect_reply is None else connect_reply
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.connects: list[dict] = []
        self.receives: list[dict] = []
        self.disconnects: list[dict] = []
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                for channel, message in self.layer.receive_batch(WS_CHANNELS, 100, block=True):
                    self.handle(channel, message)
        except BaseException as exc:  # surfaced by stop()
            self.errors.append(exc)

    def handle(self, channel: str, message: dict) -> None:
        if channel == "websocket.connect":
            with self.lock:
                self.connects.append(message)
            if self.connect_reply:
                send_retry(self.layer, message["reply_channel"], self.connect_reply)
        elif channel == "websocket.receive":
            with self.lock:
                self.receives.append(message)
            if self.echo:
                reply = {"text": message["text"]} if message["text"] is not None else {"bytes": message["bytes"]}
                send_retry(self.layer, message["reply_channel"], reply)
        else:
            with self.lock:
                self.disconnects.append(message)

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)
        assert not self.is_alive(), "the worker thread did not stop"
        if self.errors:
            raise self.errors[0]

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


# -- clients -------------------------------------------------------------------------------


def ws_connect(url: str, **kwargs: Any) -> ClientConnection:
    """A `websockets` sync client with test-friendly defaults (no proxy, no compression, no client pings)."""
    options: dict[str, Any] = {
        "open_timeout": 10,
        "close_timeout": 3,
        "ping_interval": None,
        "compression": None,
        "proxy": None,
        "legacy": True,  # a ClientConnection, not a context-manager-only connecter
    }
    options.update(kwargs)
    return connect(url, **options)


_POOL = ThreadPoolExecutor(max_workers=64, thread_name_prefix="ws-connect")


def connect_in_background(url: str, **kwargs: Any) -> Future:
    """Start a handshake in another thread (it blocks until the worker answers)."""
    return _POOL.submit(ws_connect, url, **kwargs)


def open_ws(
    server: Any, layer: Any, path: str = "/", reply: dict | None = None, **kwargs: Any
) -> tuple[ClientConnection, dict]:
    """Connect, play the worker for the handshake (accept by default); returns (client, connect message)."""
    future = connect_in_background(server.ws_url + path, **kwargs)
    message = receive(layer, "websocket.connect")
    layer.send(message["reply_channel"], {"accept": True} if reply is None else reply)
    return future.result(10), message


def wait_closed(ws: ClientConnection, timeout: float = 5.0) -> tuple[list[Any], ConnectionClosed]:
    """Read until the server closes; returns (messages read meanwhile, the ConnectionClosed)."""
    received = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"the server did not close the WebSocket within {timeout}s")
        try:
            received.append(ws.recv(timeout=remaining))
        except TimeoutError:
            continue
        except ConnectionClosed as exc:
            return received, exc


def close_code(exc: ConnectionClosed) -> int:
    """The code of the close frame the server sent (1006 if it sent none)."""
    return exc.rcvd.code if exc.rcvd is not None else 1006


# -- a raw client, for what `websockets` will not do (not answering pings, dropping TCP) -----


class RawWebSocket:
    """A hand-written client: it does the handshake, then only what the test tells it to."""

    def __init__(self, port: int, path: str | None = "/", timeout: float = 5.0) -> None:
        """Connect and send the handshake for `path` (with `path=None`, only connect)."""
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.key = b""
        self.buffer = b""
        if path is not None:
            self.send_handshake(path)

    def send_handshake(self, path: str) -> None:
        self.key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), self.port, self.key)
        )

    def read_response_head(self) -> bytes:
        """The HTTP response head (status line and headers)."""
        while b"\r\n\r\n" not in self.buffer:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError(f"closed during the handshake: {self.buffer!r}")
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head

    def expect_upgrade(self) -> None:
        head = self.read_response_head()
        assert head.startswith(b"HTTP/1.1 101"), head
        accept = base64.b64encode(hashlib.sha1(self.key + _GUID).digest())
        headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
        values = {name.strip().lower(): value.strip() for name, value in headers.items()}
        assert values.get(b"sec-websocket-accept") == accept, head

    def read_frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next (unmasked, server) frame."""
        self._fill(2)
        first, second = self.buffer[0], self.buffer[1]
        length = second & 0x7F
        offset = 2
        if length == 126:
            self._fill(4)
            length = struct.unpack("!H", self.buffer[2:4])[0]
            offset = 4
        elif length == 127:
            self._fill(10)
            length = struct.unpack("!Q", self.buffer[2:10])[0]
            offset = 10
        self._fill(offset + length)
        payload = self.buffer[offset : offset + length]
        self.buffer = self.buffer[offset + length :]
        return first & 0x0F, payload

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def read_exactly(self, size: int) -> bytes:
        self._fill(size)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _fill(self, size: int) -> None:
        while len(self.buffer) < size:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.buffer += data

    def wait_eof(self, timeout: float) -> float:
        """Read (and discard) until the server closes TCP; returns when that happened (monotonic)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        return time.monotonic()

    def abort(self) -> None:
        """Drop TCP with a RST, without a close frame."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()
