"""`interface_server.output_limit` on a real TCP transport over a socket pair (a reactor that is never run)."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock

from interface_server import output_limit
from interface_server.config import ServerConfig


@pytest.fixture
def transport():
    ours, theirs = socket.socketpair()
    reactor = MemoryReactorClock()
    transport = tcp.Server(ours, Protocol(), ("127.0.0.1", 1), None, 1, reactor)
    yield transport
    ours.close()
    theirs.close()


def fake_websocket(transport, limit: int):
    closes = []
    protocol = SimpleNamespace(
        server=SimpleNamespace(config=ServerConfig(max_output_buffer=limit)),
        transport=transport,
        reply_channel="r!abc",
        sendCloseFrame=lambda **kwargs: closes.append(kwargs["code"]),
    )
    return protocol, closes


def test_a_websocket_within_the_limit_may_write(transport):
    protocol, closes = fake_websocket(transport, 1000)
    transport.write(b"x" * 1000)  # queued, not yet sent (the reactor never runs)
    assert output_limit.websocket_may_write(protocol)
    assert closes == []
    assert getattr(protocol.server, "counters", {}) == {}


def test_a_websocket_past_the_limit_is_closed_1008_once_counted_once_and_aborted(transport, caplog):
    protocol, closes = fake_websocket(transport, 1000)
    transport.write(b"x" * 1001)
    assert not output_limit.websocket_may_write(protocol)
    assert closes == [1008]
    assert protocol.server.counters == {"output_limit_closed": 1}
    for _ in range(5):  # everything after is dropped, nothing counted or logged again
        assert not output_limit.websocket_may_write(protocol)
    assert protocol.server.counters == {"output_limit_closed": 1}
    assert len([r for r in caplog.records if "does not read" in r.getMessage()]) == 1
    transport.reactor.advance(output_limit.ABORT_GRACE - 0.01)
    assert transport.connected  # the grace: a client that drains in time may still read the close frame
    transport.reactor.advance(0.01)
    assert not transport.connected  # aborted (connection lost, what Twisted held goes with it)


def test_the_close_frame_itself_may_be_written_while_closing(transport):
    protocol, _ = fake_websocket(transport, 10)
    written = []
    protocol.sendCloseFrame = lambda **kwargs: written.append(output_limit.websocket_may_write(protocol))
    transport.write(b"x" * 11)
    assert not output_limit.websocket_may_write(protocol)
    assert written == [True]


def test_an_http_response_past_the_limit_is_aborted_and_counted(transport):
    server = SimpleNamespace(config=ServerConfig(max_output_buffer=100), counters={"other": 3})
    protocol = SimpleNamespace(server=server, transport=transport, client=("127.0.0.1", 5), request=None)
    assert output_limit.http_may_write(protocol)
    transport.write(b"y" * 101)
    assert not output_limit.http_may_write(protocol)
    assert server.counters == {"other": 3, "output_limit_closed": 1}


def test_a_cut_websocket_writes_nothing_even_when_its_socket_is_idle(transport):
    protocol, _ = fake_websocket(transport, 10)
    transport.write(b"x" * 11)
    assert not output_limit.websocket_may_write(protocol)  # cut
    # The fan-out path passes idle=True when nothing is queued; a cut client stays cut.
    assert not output_limit.websocket_may_write(protocol, idle=True)
    fresh, closes = fake_websocket(transport, 10)
    assert output_limit.websocket_may_write(fresh, idle=True)  # idle: the queued bytes are not read
    assert closes == []
