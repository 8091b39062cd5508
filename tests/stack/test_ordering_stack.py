"""enforce_ordering through the real stack: 4 worker processes, 50 sockets each sending 200 frames at once."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect

CLIENTS = 50
FRAMES = 200


async def _client(url: str, index: int) -> list[str]:
    async with connect(url, open_timeout=30, ping_interval=None, compression=None, max_queue=None) as ws:
        sent = [f"{index}:{n}" for n in range(FRAMES)]
        for text in sent:  # as fast as the socket takes them: no waiting for answers
            await ws.send(text)
        got = []
        while len(got) < FRAMES:
            got.append(await asyncio.wait_for(ws.recv(), timeout=60))
        return got


async def _run_all(url: str) -> list[list[str]]:
    return await asyncio.gather(*(_client(url, i) for i in range(CLIENTS)))


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("path", ["/ordered/fn/", "/ordered/class/"], ids=["function-consumers", "strict_ordering"])
def test_every_socket_sees_every_frame_in_order_across_four_workers(stack, path):
    # 10,000 frames arrive at once: room for all of them on websocket.receive (the default 100
    # would answer the burst with 1013, as it should).
    stack.env["TEST_LAYER_CAPACITY"] = str(CLIENTS * FRAMES)
    stack.start_server()
    for _ in range(4):
        stack.start_worker()
    results = asyncio.run(_run_all(stack.ws_url + path))
    for index, got in enumerate(results):
        assert got == [f"{index}:{n}" for n in range(FRAMES)], f"socket {index} got frames out of order or lost"
    logs = "".join(stack.worker_output(i) for i in range(4))
    assert "ordering cannot be restored" not in logs, logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]
