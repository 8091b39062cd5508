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


async def _one(host: str, port: int, path: str, echo: bytes | None, result: CycleResult, timeout: float) -> None:
    key = base64.b64encode(os.urandom(16))
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(
            b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), host.encode(), port, key)
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
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
