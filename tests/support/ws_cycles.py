"""Many short WebSocket connections from one thread: handshake, optionally one echo, clean close.

    result = run_cycles("127.0.0.1", port, "/notes/", count=10_000, concurrency=50)
    assert result.opened == 10_000 and not result.errors

A raw asyncio client (no library per connection), so 10,000 cycles cost the
test process little CPU and the figures measure the server and the worker.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import threading
import time
from dataclasses import dataclass, field


@dataclass
class CycleResult:
    opened: int = 0
    closed_cleanly: int = 0
    echoed: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", await reader.readexactly(8))[0]
    return first & 0x0F, await reader.readexactly(length)


async def _handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int, path: str, timeout: float
) -> bytes:
    """Send the opening handshake; returns the response head."""
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), host.encode(), port, key)
    )
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)


async def _one(host: str, port: int, path: str, echo: bytes | None, result: CycleResult, timeout: float) -> None:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        head = await _handshake(reader, writer, host, port, path, timeout)
        if not head.startswith(b"HTTP/1.1 101 "):
            result.errors.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
            return
        result.opened += 1
        if echo is not None:
            writer.write(_frame(0x1, echo))
            opcode, payload = await asyncio.wait_for(_read_frame(reader), timeout)
            if (opcode, payload) == (0x1, echo):
                result.echoed += 1
        writer.write(_frame(0x8, struct.pack("!H", 1000)))
        while True:
            opcode, _ = await asyncio.wait_for(_read_frame(reader), timeout)
            if opcode == 0x8:
                result.closed_cleanly += 1
                break
        await asyncio.wait_for(reader.read(), timeout)  # the server closes TCP after the closing handshake
    except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
        result.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        writer.close()


async def _cycles(
    host: str, port: int, path: str, count: int, concurrency: int, echo: bytes | None, timeout: float
) -> CycleResult:
    result = CycleResult()
    remaining = iter(range(count))

    async def lane() -> None:
        for _ in remaining:
            await _one(host, port, path, echo, result, timeout)

    started = time.monotonic()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    result.seconds = time.monotonic() - started
    return result


def run_cycles(
    host: str,
    port: int,
    path: str,
    count: int,
    concurrency: int = 50,
    echo: bytes | None = None,
    timeout: float = 20.0,
) -> CycleResult:
    """Open and cleanly close `count` WebSockets to `path`, `concurrency` at a time (one echo each with `echo`)."""
    return asyncio.run(_cycles(host, port, path, count, concurrency, echo, timeout))


class HeldSockets:
    """`count` WebSockets held open by an asyncio loop in a thread of its own, until the server closes them.

    held = HeldSockets("127.0.0.1", port, "/notes/", 500)  # returns once all are open
    ...  # SIGTERM the server
    codes = held.close_codes(timeout=10)  # the code of each server close frame (None: TCP closed without one)
    """

    def __init__(self, host: str, port: int, path: str, count: int, concurrency: int = 50, timeout: float = 20.0):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="held-sockets", daemon=True)
        self.thread.start()
        self.streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        future = asyncio.run_coroutine_threadsafe(
            self._open_all(host, port, path, count, concurrency, timeout), self.loop
        )
        future.result(timeout * 3)

    async def _open_all(self, host: str, port: int, path: str, count: int, concurrency: int, timeout: float) -> None:
        remaining = iter(range(count))

        async def lane() -> None:
            for _ in remaining:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                head = await _handshake(reader, writer, host, port, path, timeout)
                if not head.startswith(b"HTTP/1.1 101 "):
                    raise ConnectionError(head.split(b"\r\n", 1)[0].decode("latin-1"))
                self.streams.append((reader, writer))

        await asyncio.gather(*(lane() for _ in range(concurrency)))

    async def _close_code(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int | None:
        try:
            while True:
                opcode, payload = await _read_frame(reader)
                if opcode == 0x8:
                    writer.write(_frame(0x8, payload[:2]))  # answer the close, as a browser does
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        except (OSError, asyncio.IncompleteReadError):
            return None
        finally:
            writer.close()

    def close_codes(self, timeout: float) -> list[int | None]:
        """Wait for the server to close every socket; the code of each close frame, in opening order."""

        async def all_codes() -> list[int | None]:
            return await asyncio.wait_for(
                asyncio.gather(*(self._close_code(reader, writer) for reader, writer in self.streams)), timeout
            )

        try:
            return asyncio.run_coroutine_threadsafe(all_codes(), self.loop).result(timeout + 5)
        finally:
            self.stop()

    def stop(self) -> None:
        if self.loop.is_running():
            for _, writer in self.streams:
                self.loop.call_soon_threadsafe(writer.close)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
