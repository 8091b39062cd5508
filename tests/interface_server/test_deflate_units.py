"""`interface_server.deflate` on its own: how many times a message is deflated, and what each socket's client
can inflate (checked with zlib as a client would, keeping or not keeping its window)."""

from __future__ import annotations

import json
import os
import zlib

import pytest
from autobahn.websocket.compress import PerMessageDeflate, PerMessageDeflateOffer

from interface_server import deflate
from interface_server.deflate import Compression, CompressionSettings, SharedFrames

TEXT = json.dumps([{"user": f"user{i}", "text": "hello there, how are you " * 3} for i in range(20)]).encode()


def pmce(no_context_takeover: bool = False, window_bits: int = 15) -> PerMessageDeflate:
    return PerMessageDeflate(True, no_context_takeover, False, window_bits, 15, None)


class Client:
    """What a browser does with the frames: inflate with one window kept across messages (or a fresh one)."""

    def __init__(self, takeover: bool = True, window_bits: int = 15) -> None:
        self.takeover = takeover
        self.window_bits = window_bits
        self.inflater = zlib.decompressobj(-window_bits)

    def read(self, data: bytes) -> bytes:
        first, size = data[0], data[1] & 0x7F
        offset = 2 if size < 126 else 4 if size == 126 else 10
        payload = data[offset:]
        if not first & 0x40:
            return payload
        if not self.takeover:
            self.inflater = zlib.decompressobj(-self.window_bits)
        return self.inflater.decompress(payload + b"\x00\x00\xff\xff")


def test_a_broadcast_to_sockets_without_context_takeover_is_deflated_once():
    compression = Compression(CompressionSettings(no_context_takeover=True))
    sockets = [compression.for_socket([pmce(no_context_takeover=True)]) for _ in range(100)]
    frames = [s.frame(bytes(TEXT), False) for s in sockets]  # each copy its own bytes object, as decoded
    assert compression.shared.deflated == 1
    assert all(f is frames[0] for f in frames)
    assert frames[0][0] == 0xC1
    assert Client(takeover=False).read(frames[0]) == TEXT


def test_sockets_with_context_takeover_share_from_the_second_copy_and_restart_their_stream():
    compression = Compression(CompressionSettings())
    sockets = [compression.for_socket([pmce()]) for _ in range(50)]
    clients = [Client() for _ in sockets]
    for round_ in range(3):
        message = TEXT + b"round %d" % round_
        for s, c in zip(sockets, clients, strict=True):
            assert c.read(s.frame(bytes(message), False)) == message
        # Then each socket's own message: its stream must not refer to anything the shared frame brought.
        for i, (s, c) in enumerate(zip(sockets, clients, strict=True)):
            own = TEXT + b"just for %d" % i
            assert c.read(s.frame(own, False)) == own
    assert compression.shared.deflated == 3  # once per broadcast; the first copy went through its socket's stream


def test_a_message_repeated_to_one_socket_keeps_that_sockets_stream():
    compression = Compression(CompressionSettings())
    socket_ = compression.for_socket([pmce()])
    client = Client()
    first = socket_.frame(TEXT, False)
    second = socket_.frame(bytes(TEXT), False)
    assert compression.shared.deflated == 0
    assert len(second) < len(first) / 4  # refers back to the first: context takeover at work
    assert client.read(first) == TEXT and client.read(second) == TEXT


def test_per_socket_mode_deflates_every_copy():
    compression = Compression(CompressionSettings(shared=False, no_context_takeover=True))
    assert compression.shared is None
    sockets = [compression.for_socket([pmce(no_context_takeover=True)]) for _ in range(10)]
    frames = [s.frame(TEXT, False) for s in sockets]
    assert len({id(f) for f in frames}) == 10 and len(set(frames)) == 1


def test_below_the_minimum_size_and_plain_requests_are_not_deflated():
    compression = Compression(CompressionSettings(min_size=100))
    socket_ = compression.for_socket([pmce()])
    assert socket_.frame(b"x" * 99, False) == b"\x81\x63" + b"x" * 99
    assert socket_.frame(TEXT, True, plain=True)[:1] == b"\x82"
    assert socket_.frame(b"", False) == b"\x81\x00"


def test_incompressible_shared_messages_go_plain():
    compression = Compression(CompressionSettings(no_context_takeover=True))
    noise = os.urandom(4000)
    frame = compression.for_socket([pmce(True)]).frame(noise, True)
    assert frame[0] == 0x82 and frame.endswith(noise)


def test_a_small_client_window_gets_a_frame_of_its_own_when_the_message_is_longer():
    compression = Compression(CompressionSettings(no_context_takeover=True))
    long_text = TEXT * 3  # longer than 2 ** 9
    wide = compression.for_socket([pmce(True)])
    narrow = compression.for_socket([pmce(True, window_bits=9)])
    a, b = wide.frame(long_text, False), narrow.frame(bytes(long_text), False)
    assert a != b and compression.shared.deflated == 2
    assert Client(False, 9).read(b) == long_text
    short = TEXT[:400]
    assert wide.frame(short, False) is narrow.frame(bytes(short), False)  # fits either window: one frame


def test_shared_frames_are_bounded():
    shared = SharedFrames(6, entries=4, max_bytes=10**9)
    for i in range(10):
        shared.frame_for(TEXT + b"%d" % i, False, 15, object(), True)
    assert len(shared) == 4
    shared = SharedFrames(6, entries=100, max_bytes=3 * len(TEXT))
    for i in range(10):
        shared.frame_for(TEXT + b"%d" % i, False, 15, object(), True)
    assert len(shared) <= 3
    assert shared.frame_for(b"x" * (deflate.SHARED_LARGEST + 1), False, 15, object(), True) is None


def test_the_accept_says_server_no_context_takeover_when_the_server_chose_it():
    offer = PerMessageDeflateOffer.parse({"client_max_window_bits": [True]})
    plain = Compression(CompressionSettings()).accept([offer])
    assert plain.get_extension_string() == "permessage-deflate"
    off = Compression(CompressionSettings(no_context_takeover=True)).accept([offer])
    assert set(off.get_extension_string().split("; ")) == {
        "permessage-deflate",
        "client_no_context_takeover",
        "server_no_context_takeover",
    }
    assert Compression(CompressionSettings()).accept([]) is None


@pytest.mark.parametrize("level", [-1, 10])
def test_settings_are_checked(level):
    with pytest.raises(ValueError):
        CompressionSettings(level=level)
