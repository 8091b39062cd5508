"""Memory per idle WebSocket: 10,000 held by one interface-server process, and what each one keeps.

The measured test opens 10,000 WebSockets (asyncio client, 100 handshakes in
flight; the open-files limit raised for the client and the server it
starts), holds them idle, and checks the server's RSS per socket and its idle
CPU. The unit tests check that an open socket no longer holds what only the
handshake needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sys
import time
from collections import deque

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory

from channels_core.test.processes import cpu_seconds
from interface_server import ws_protocol
from interface_server.wire_messages import RequestInfo

from .ws_support import Worker

SOCKETS = 10_000
MAX_KB_PER_SOCKET = 8.0
OPEN_CONCURRENCY = 100


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.fail(f"the open-files hard limit is {hard}; this test needs {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def _hold(url: str, count: int, server, hold: float) -> tuple[int, int, float, int]:
    from websockets.asyncio.client import connect

    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    async with contextlib.AsyncExitStack() as stack:

        async def one():
            async with gate:
                return await stack.enter_async_context(
                    connect(url, compression=None, ping_interval=None, open_timeout=60, max_queue=None)
                )

        async with contextlib.AsyncExitStack() as warm:  # first-handshake costs out of the baseline
            for _ in range(10):
                await warm.enter_async_context(connect(url, compression=None, ping_interval=None))
        await asyncio.sleep(1)
        base = server.rss_kb()
        sockets = await asyncio.gather(*(one() for _ in range(count)))
        # The burst of opens leaves one full garbage-collection pass to come (about 0.1 s with 10,000 sockets'
        # objects): a one-off, not idle cost. Settle first, then measure long enough that it could not reach 2%.
        await asyncio.sleep(3)
        before = cpu_seconds(server.process.pid)
        await asyncio.sleep(hold)
        idle_cpu = (cpu_seconds(server.process.pid) - before) / hold
        held = server.rss_kb()
        still_open = sum(ws.close_code is None for ws in sockets)
    return base, held, idle_cpu, still_open


@pytest.mark.alone
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ten_thousand_idle_websockets_in_one_process(start_server, worker_layer):
    _raise_fd_limit(SOCKETS + 1000)  # for this process (the client) and the server, which inherits it
    # Pings every 300 s: opening takes tens of seconds, so with the default 20 s the hold would see the
    # first sockets' pings (10,000 sockets / 20 s: 500 pings a second, about 5% of a core here).
    server = start_server("--ping-interval", "300", layer_options={"capacity": SOCKETS * 2})
    with Worker(worker_layer, echo=False):
        base, held, idle_cpu, still_open = asyncio.run(_hold(server.ws_url, SOCKETS, server, 10.0))
    per_socket = (held - base) / SOCKETS
    print(
        f"{SOCKETS:,} idle WebSockets: server RSS {base:,} -> {held:,} KB ({per_socket:.2f} KB per socket),"
        f" idle CPU {idle_cpu * 100:.2f}% of a core"
    )
    assert still_open == SOCKETS
    assert per_socket <= MAX_KB_PER_SOCKET, f"{per_socket:.2f} KB per idle WebSocket"
    # A guard against work per socket per tick, not a target (issue 19 asks for the figure): 0.6% of a
    # core on the VM of 2026-12-07's first sessions, 2.2-3.4% on that day's last, slower one, where the
    # code of 7d1120b measured 2.8% too. Anything that walks the sockets on a timer costs far more.
    assert idle_cpu < 0.05, f"{idle_cpu * 100:.1f}% of a core while idle"


# -- what an open socket keeps ---------------------------------------------------------------------------


class _Server:
    websocket_timeout = None

    def log_action(self, *args) -> None:
        pass


def _open_protocol() -> ws_protocol.WebSocketProtocol:
    factory = WebSocketServerFactory()
    factory.setProtocolOptions(autoPingInterval=20, allowNullOrigin=True)
    protocol_class = ws_protocol.configured_protocol(factory)
    protocol = protocol_class()
    protocol.factory = factory
    info = RequestInfo("GET", "1.1", b"/ws/?a=1", [[b"host", b"x"], [b"origin", b"http://x"]], None, None, "ws")
    protocol.setup(_Server(), info)
    # What Autobahn leaves after a handshake (`processHandshake`), and its queue of writes.
    for name in ws_protocol._HANDSHAKE_ONLY:
        setattr(protocol, name, {"big": "x" * 100})
    protocol.send_queue = deque()
    return protocol


def test_the_factory_options_live_on_the_class_not_each_socket():
    factory = WebSocketServerFactory()
    factory.setProtocolOptions(autoPingInterval=7, maxMessagePayloadSize=1234)
    protocol_class = ws_protocol.configured_protocol(factory)
    protocol = protocol_class()
    assert protocol.autoPingInterval == 7 and protocol.maxMessagePayloadSize == 1234
    # Autobahn copies an option into the instance only when `hasattr` is false.
    assert all(hasattr(protocol, name) for name in protocol.CONFIG_ATTRS)
    assert not set(protocol.CONFIG_ATTRS) & set(vars(protocol))
    # A function option stays a plain function (Autobahn's default accept takes the offers only).
    assert protocol.perMessageCompressionAccept([]) is None


def test_an_open_socket_sheds_the_handshake():
    protocol = _open_protocol()
    grown = sys.getsizeof(protocol.__dict__)
    protocol._shed_handshake()
    state = vars(protocol)
    assert not set(ws_protocol._HANDSHAKE_ONLY) & set(state)
    assert all(getattr(protocol, name) is None for name in ws_protocol._HANDSHAKE_ONLY)
    assert protocol.info.headers == [] and protocol.info.path == "/ws/"
    assert sys.getsizeof(protocol.__dict__) < grown  # compacted, not only emptied
    queue = protocol.send_queue
    assert not queue and len(queue) == 0
    queue.append((b"a", True))
    queue.append((b"b", False))
    assert queue.popleft() == (b"a", True) and len(queue) == 1


def test_shedding_keeps_queued_writes_in_order():
    protocol = _open_protocol()
    protocol.send_queue.extend([(b"1", False), (b"2", True)])
    protocol._shed_handshake()
    assert [protocol.send_queue.popleft(), protocol.send_queue.popleft()] == [(b"1", False), (b"2", True)]


def test_a_socket_opened_long_ago_still_answers(start_server, worker_layer):
    """The shed state is enough for everything after the handshake: receive, reply, close."""
    from .ws_support import ws_connect

    server = start_server()
    with Worker(worker_layer) as worker, ws_connect(server.ws_url + "/shed/?x=1") as ws:
        time.sleep(0.2)
        ws.send("one")
        assert ws.recv(timeout=5) == "one"
        ws.send(b"\x00two")
        assert ws.recv(timeout=5) == b"\x00two"
    deadline = time.monotonic() + 5
    while not worker.disconnects and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker.disconnects and worker.disconnects[0]["path"] == "/shed/"
