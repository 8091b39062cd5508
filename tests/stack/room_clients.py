"""Many WebSocket clients of one group, in one asyncio loop on a thread: what each got, and who was dropped.

Each client connects to /fault/room/ (its connect consumer joins the group and
accepts), reads everything, and sends `e:<client>:<seq>` once per
`frame_interval` seconds (the echo consumer sends it back) until told to stop.
Broadcasts are `b:<seq>` texts. At the end every client waits (bounded) for
the echoes of all its frames, then closes; a close the client did not start
counts as dropped.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


@dataclass
class ClientState:
    broadcasts: set[int] = field(default_factory=set)
    sent: set[int] = field(default_factory=set)
    echoed: set[int] = field(default_factory=set)
    dropped: str | None = None  # why the server side ended the connection
    connect_error: str | None = None


class RoomClients:
    """`start()`, `wait_connected()`, then `stop_sending()` and `finish()`; results in `clients`."""

    def __init__(
        self,
        url: str,
        count: int,
        frame_interval: float = 1.0,
        connect_concurrency: int = 50,
        echo_wait: float = 15.0,
    ) -> None:
        self.url = url
        self.count = count
        self.frame_interval = frame_interval
        self.echo_wait = echo_wait
        self.connect_concurrency = connect_concurrency
        self.clients = [ClientState() for _ in range(count)]
        self.connected = 0
        self._all_connected = threading.Event()
        self._sending = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._go: asyncio.Event | None = None  # all connected: start sending
        self._finish: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="room-clients", daemon=True)

    def start(self) -> RoomClients:
        self._thread.start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        return self._all_connected.wait(timeout)

    def stop_sending(self) -> None:
        self._sending = False

    def finish(self, timeout: float) -> None:
        """Let every client wait for its last echoes, then close; returns when all are done."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._finish.set)
        self._thread.join(timeout)

    async def _main(self) -> None:
        self._go, self._finish = asyncio.Event(), asyncio.Event()
        self._loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(self.connect_concurrency)
        await asyncio.gather(*(self._client(i, gate) for i in range(self.count)))

    async def _client(self, i: int, gate: asyncio.Semaphore) -> None:
        state = self.clients[i]
        try:
            async with gate:
                ws = await connect(
                    self.url, open_timeout=60, ping_interval=None, compression=None, close_timeout=5, max_queue=None
                )
        except Exception as exc:
            state.connect_error = f"{type(exc).__name__}: {exc}"
            self._count_connected()
            return
        self._count_connected()
        reader = asyncio.create_task(self._read(ws, state))
        await self._go.wait()
        await asyncio.sleep(random.uniform(0, self.frame_interval))
        seq = 0
        while self._sending and not reader.done():
            try:
                await ws.send(f"e:{i}:{seq}")
            except ConnectionClosed:
                break
            state.sent.add(seq)
            seq += 1
            await asyncio.sleep(self.frame_interval)
        await self._finish.wait()
        deadline = time.monotonic() + self.echo_wait
        while state.echoed != state.sent and not reader.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if not reader.done():
            reader.cancel()
            await ws.close()
        else:
            await reader

    async def _read(self, ws, state: ClientState) -> None:
        try:
            async for text in ws:
                if text.startswith("b:"):
                    state.broadcasts.add(int(text[2:]))
                elif text.startswith("e:"):
                    state.echoed.add(int(text.rsplit(":", 1)[1]))
        except ConnectionClosed as exc:
            state.dropped = f"closed {exc.rcvd.code if exc.rcvd else 'abnormally'}"
            return
        state.dropped = f"closed {ws.close_code}"

    def _count_connected(self) -> None:
        self.connected += 1  # only the loop's thread writes it
        if self.connected == self.count:
            self._go.set()
            self._all_connected.set()
