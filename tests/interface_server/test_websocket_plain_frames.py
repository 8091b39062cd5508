"""A plain (uncompressed) message is framed once for the sockets that get it in a row (`ws_protocol.PlainFrames`).

The frame must be byte for byte what Autobahn's own `sendMessage` writes,
for every length encoding, text and binary; an equal payload (another bytes
object with the same content, as each socket's reply decodes its own) gets
the frame already built; another payload, or the same bytes as the other
opcode, gets its own.
"""

from __future__ import annotations

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.testing import StringTransport

from interface_server import compat
from interface_server.ws_protocol import PlainFrames


def autobahn_frame(payload: bytes, binary: bool) -> bytes:
    factory = WebSocketServerFactory()
    compat.use_exact_timers(factory)
    factory.protocol = WebSocketServerProtocol
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.state = WebSocketServerProtocol.STATE_OPEN
    protocol.sendMessage(payload, binary)
    return transport.value()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
@pytest.mark.parametrize("binary", [False, True])
def test_the_frame_is_autobahns_byte_for_byte(size, binary):
    payload = bytes(i % 251 for i in range(size))
    assert PlainFrames().frame(payload, binary) == autobahn_frame(payload, binary)


def test_an_equal_payload_reuses_the_frame_and_another_gets_its_own():
    frames = PlainFrames()
    first = frames.frame(b"hello group", False)
    again = frames.frame(bytes(bytearray(b"hello group")), False)  # equal content, another object
    assert again is first
    other = frames.frame(b"hello grouP", False)
    assert other is not first and other.endswith(b"hello grouP")
    assert frames.frame(b"hello grouP", True)[0] == 0x82  # same bytes as binary: a binary frame
    assert frames.frame(b"hello grouP", False)[0] == 0x81


def test_a_message_larger_than_the_limit_is_not_kept():
    frames = PlainFrames(largest=10)
    big = frames.frame(b"x" * 11, False)
    assert frames.frame(b"x" * 11, False) is not big
    assert frames.frame(b"x" * 11, False) == big
