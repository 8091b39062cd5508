"""Fuzzing WebSocket handshakes and frames through the real protocol stack (h11 upgrade, then Autobahn).

After a valid, accepted handshake the client sends any mix of frames
(every opcode, reserved bits, unmasked, fragmented, oversized lengths,
invalid UTF-8, bad close codes) and raw garbage, in pieces. The server
must never let an exception escape or log a traceback; what it writes is
whole frames, and a close it sends carries a code a server may send; every
`websocket.receive` it forwards is well-typed and in order, and exactly
one `websocket.disconnect` follows when the connection ends.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from .http_harness import Connection, parse_responses
from .support import fake_reactor, fuzz_settings, no_logged_tracebacks

LOGGERS = ("interface_server", "twisted", "autobahn")
KEY_HEADERS = [
    (b"Host", b"x"),
    (b"Upgrade", b"websocket"),
    (b"Connection", b"Upgrade"),
    (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"Sec-WebSocket-Version", b"13"),
]
# What a server may put in a close frame (RFC 6455 7.4.1; 1005/1006/1015 are never sent).
SENDABLE_CLOSE = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))


def handshake(headers: list[tuple[bytes, bytes]], target: bytes = b"/ws/") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n"


def frame(
    opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bytes | None = b"abcd", length: int | None = None
) -> bytes:
    """A client frame; `length` lies about the payload's length when given."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0xF)])
    mask_bit = 0x80 if mask is not None else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each frame the server wrote (unmasked); AssertionError on a partial or masked frame."""
    out = []
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 2, data[pos:]
        first, second = data[pos], data[pos + 1]
        assert second & 0x80 == 0, "a server frame must not be masked"
        n = second & 0x7F
        pos += 2
        if n == 126:
            (n,) = struct.unpack("!H", data[pos : pos + 2])
            pos += 2
        elif n == 127:
            (n,) = struct.unpack("!Q", data[pos : pos + 8])
            pos += 8
        assert len(data) - pos >= n, "a partial frame"
        out.append((first & 0x0F, data[pos : pos + n]))
        pos += n
    return out


def open_socket(clock, **config) -> tuple[Connection, str]:
    conn = Connection(clock, max_ws_message_size=4096, **config)
    conn.feed(handshake(KEY_HEADERS))
    channel, connect = conn.layer.receive(["websocket.connect"], block=False)
    assert channel == "websocket.connect"
    conn.reply(connect["reply_channel"], {"accept": True})
    assert conn.written().startswith(b"HTTP/1.1 101 "), conn.written()
    conn.transport.clear()
    return conn, connect["reply_channel"]


def drain(conn: Connection, channel: str) -> list[dict]:
    out = []
    while True:
        got, message = conn.layer.receive([channel], block=False)
        if got is None:
            return out
        out.append(message)


opcodes = st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA]) | st.integers(0, 15)
payloads = st.sampled_from(
    [
        b"",
        b"hi",
        "é".encode(),
        b"\xff\xfe",
        b"\xed\xa0\x80",
        b"\x03\xe8",
        b"\x03\xe8bye",
        b"\x03\xed",
        b"\x0b\xb8",
        b"\x00\x01",
    ]
) | st.binary(max_size=140)
frames = st.one_of(
    st.builds(
        frame,
        opcodes,
        payloads,
        fin=st.booleans(),
        rsv=st.sampled_from([0, 0, 0, 1, 4, 7]),
        mask=st.sampled_from([b"abcd", b"\x00\x00\x00\x00", None]),
        length=st.none() | st.sampled_from([0, 125, 126, 65535, 65536, 2**63 - 1, 2**64 - 1]),
    ),
    st.builds(frame, st.just(0x1), st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass"))),
    st.binary(max_size=20),
)


def run_frames(chunks: list[bytes], pieces: int, echo: bool) -> None:
    with fake_reactor() as clock, no_logged_tracebacks(*LOGGERS):
        conn, reply_channel = open_socket(clock)
        data = b"".join(chunks)
        conn.feed(data, pieces)
        received = drain(conn, "websocket.receive")
        orders = [m["order"] for m in received]
        assert orders == sorted(orders) and len(set(orders)) == len(orders)
        for message in received:
            assert message["reply_channel"] == reply_channel
            assert (message["text"] is None) != (message["bytes"] is None)
            assert message["text"] is None or isinstance(message["text"], str)
            assert message["bytes"] is None or isinstance(message["bytes"], bytes)
            if echo:  # replies may reach a socket that is closing: dropped quietly
                conn.reply(
                    reply_channel,
                    {"text": message["text"]} if message["text"] is not None else {"bytes": message["bytes"]},
                )
        clock.advance(60)  # closing handshakes time out, pings go out
        clock.run_due()
        for opcode, payload in server_frames(conn.written()):
            assert opcode in (0x1, 0x2, 0x8, 0x9, 0xA), opcode
            if opcode == 0x8 and payload:
                (code,) = struct.unpack("!H", payload[:2])
                assert code in SENDABLE_CLOSE, code
        conn.close()
        disconnects = drain(conn, "websocket.disconnect")
        assert len(disconnects) == 1, disconnects
        assert conn.server.reply_handlers == {} and not conn.server.connections  # nothing left behind
        assert disconnects[0]["order"] == (orders[-1] if orders else 0) + 1


@fuzz_settings(300)
@given(chunks=st.lists(frames, max_size=8), pieces=st.integers(1, 4), echo=st.booleans())
@example(chunks=[frame(0x1, b"\xff")], pieces=1, echo=False)  # invalid UTF-8: 1007
@example(chunks=[frame(0x1, b"x" * 5000, length=None)], pieces=1, echo=False)  # over the 4096 limit: 1009
@example(chunks=[frame(0x8, b"\x03\xed")], pieces=1, echo=False)  # close with 1005, not sendable
@example(chunks=[frame(0x1, b"a", fin=False), frame(0x9, b"p"), frame(0x0, b"b")], pieces=2, echo=True)
@example(chunks=[frame(0x2, b"no mask", mask=None)], pieces=1, echo=False)
@example(chunks=[frame(0x1, b"hi"), frame(0x8, b"\x03\xe8"), frame(0x1, b"after close")], pieces=1, echo=True)
def test_any_frames_after_the_handshake(chunks, pieces, echo):
    run_frames(chunks, pieces, echo)


def test_the_websocket_harness_really_echoes():
    with fake_reactor() as clock:
        conn, reply_channel = open_socket(clock)
        conn.feed(frame(0x1, b"hello"))
        (message,) = drain(conn, "websocket.receive")
        assert message["text"] == "hello"
        conn.reply(reply_channel, {"text": "back"})
        assert server_frames(conn.written()) == [(0x1, b"back")]
        conn.close()


header_values = st.sampled_from(
    [
        b"",
        b"websocket",
        b"WebSocket",
        b"Upgrade",
        b"13",
        b"8",
        b"99",
        b"x" * 300,
        b"\xff",
        b"a, b",
        b"permessage-deflate; client_max_window_bits=99",
        b"dGhlIHNhbXBsZSBub25jZQ==",
    ]
) | st.binary(max_size=12)
header_names = st.sampled_from(
    [
        b"Host",
        b"Upgrade",
        b"Connection",
        b"Sec-WebSocket-Key",
        b"Sec-WebSocket-Version",
        b"Sec-WebSocket-Protocol",
        b"Sec-WebSocket-Extensions",
        b"Origin",
        b"Cookie",
    ]
)


@st.composite
def handshakes(draw) -> bytes:
    headers = list(KEY_HEADERS)
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["drop", "replace", "add"]))
        if action == "drop" and headers:
            headers.pop(draw(st.integers(0, len(headers) - 1)))
        elif action == "replace" and headers:
            i = draw(st.integers(0, len(headers) - 1))
            headers[i] = (headers[i][0], draw(header_values))
        else:
            headers.append((draw(header_names), draw(header_values)))
    target = draw(st.sampled_from([b"/ws/", b"/%ff", b"*", b"/a?b"]))
    return handshake(headers, target) + draw(st.sampled_from([b"", frame(0x1, b"early")]))


@fuzz_settings(300)
@given(
    data=handshakes(),
    accept=st.sampled_from(
        [
            {"accept": True},
            {"accept": False},
            {"close": True},
            {"text": "hi"},
            {"bytes": b"\xff"},
            {"close": 4000, "text": "x"},
            {"accept": "yes"},
            {"close": 99},
        ]
    ),
)
@example(data=handshake(KEY_HEADERS + [(b"Sec-WebSocket-Protocol", b"\xff, ,,")]), accept={"accept": True})
def test_any_handshake(data, accept):
    with fake_reactor() as clock, no_logged_tracebacks(*LOGGERS):
        conn = Connection(clock)
        conn.feed(data)
        channel, connect = conn.layer.receive(["websocket.connect"], block=False)
        if channel is not None:
            conn.reply(connect["reply_channel"], accept)
        clock.advance(conn.server.config.websocket_connect_timeout + 1)
        clock.run_due()
        written = conn.written()
        if written.startswith(b"HTTP/1.1 101 "):
            assert channel is not None  # never opened without the application's accept
            head, _, rest = written.partition(b"\r\n\r\n")
            server_frames(rest)
        else:
            statuses = parse_responses(written, [b"GET"])
            assert all(400 <= s <= 599 for s in statuses), (statuses, written[:300])
        conn.close()
        if channel is not None:
            assert len(drain(conn, "websocket.disconnect")) == 1
        assert conn.server.reply_handlers == {} and not conn.server.connections


@pytest.mark.slow
@fuzz_settings(1000)
@given(chunks=st.lists(frames, max_size=12), pieces=st.integers(1, 6), echo=st.booleans())
def test_any_frames_after_the_handshake_long(chunks, pieces, echo):
    run_frames(chunks, pieces, echo)
