"""permessage-deflate on the real server (`--ws-compression`): negotiation, frames, sharing, hostile clients.

Each test runs an `interface-server` subprocess on Redis and plays the
worker; clients are `websockets` clients offering the extension (they
inflate what they get, so a wrong frame fails the test) or a raw socket
when the test must see the frame bits themselves.
"""

from __future__ import annotations

import base64
import json
import os
import random
import struct
import threading
import zlib

import pytest
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from tests.support.browser import CHROMIUM, Browser

from .ws_support import RawWebSocket, open_ws, receive

BIG = json.dumps(
    {"type": "chat.message", "items": [{"user": "alice", "text": "hello world " * 4, "n": i} for i in range(30)]}
)


def deflating(**options):
    """`websockets` client options offering permessage-deflate (with `options` for its factory)."""
    return {"extensions": [ClientPerMessageDeflateFactory(client_max_window_bits=True, **options)]}


def extensions_header(ws) -> str:
    return ws.response.headers.get("Sec-WebSocket-Extensions", "")


class DeflateRawClient(RawWebSocket):
    """A raw client that offers permessage-deflate and shows each frame's RSV1 bit and raw payload."""

    def __init__(self, port: int, offer: str = "permessage-deflate; client_max_window_bits", path: str = "/") -> None:
        self.offer = offer
        super().__init__(port, path)

    def send_handshake(self, path: str) -> None:
        self.key = base64.b64encode(os.urandom(16))
        extension = f"Sec-WebSocket-Extensions: {self.offer}\r\n".encode() if self.offer else b""
        self.sock.sendall(
            b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
            % (path.encode(), self.port, self.key, extension)
        )

    def upgrade_headers(self) -> dict[str, str]:
        head = self.read_response_head()
        assert head.startswith(b"HTTP/1.1 101"), head
        lines = head.decode("latin-1").split("\r\n")[1:]
        return {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}

    def read_raw_frame(self) -> tuple[int, bytes]:
        """(first byte, payload) of the next server frame."""
        self._fill(2)
        first = self.buffer[0]
        opcode, payload = self.read_frame()
        return first, payload

    def send_raw(self, first: int, payload: bytes) -> None:
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            head = bytes((first, 0x80 | size))
        elif size < 65536:
            head = bytes((first, 0x80 | 126)) + struct.pack("!H", size)
        else:
            head = bytes((first, 0x80 | 127)) + struct.pack("!Q", size)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def open_raw(
    server, layer, offer: str = "permessage-deflate; client_max_window_bits"
) -> tuple[DeflateRawClient, dict, str]:
    """A raw client through the handshake (accepted); returns it, its upgrade headers and its reply channel."""
    client = DeflateRawClient(server.port, offer)
    message = receive(layer, "websocket.connect")
    layer.send(message["reply_channel"], {"accept": True})
    headers = client.upgrade_headers()
    return client, headers, message["reply_channel"]


def inflate(payload: bytes, inflater=None) -> bytes:
    inflater = inflater or zlib.decompressobj(-15)
    return inflater.decompress(payload + b"\x00\x00\xff\xff")


# -- negotiation ------------------------------------------------------------------------------


def test_compression_is_off_by_default(start_server, worker_layer):
    server = start_server()
    ws, message = open_ws(server, worker_layer, **deflating())
    with ws:
        assert extensions_header(ws) == ""
        worker_layer.send(message["reply_channel"], {"text": BIG})
        assert ws.recv(timeout=5) == BIG


def test_a_deflating_client_negotiates_and_gets_compressed_frames(start_server, worker_layer):
    server = start_server("--ws-compression")
    ws, message = open_ws(server, worker_layer, **deflating())
    with ws:
        header = extensions_header(ws)
        assert header.startswith("permessage-deflate"), header
        assert "server_no_context_takeover" not in header
        for text in (BIG, "small", BIG + "!", BIG):
            worker_layer.send(message["reply_channel"], {"text": text})
            assert ws.recv(timeout=5) == text
        blob = bytes(range(256)) * 20
        worker_layer.send(message["reply_channel"], {"bytes": blob})
        assert ws.recv(timeout=5) == blob
        # What the client sends compressed is inflated by the server.
        ws.send(BIG)
        assert receive(worker_layer, "websocket.receive")["text"] == BIG


def test_frames_on_the_wire_are_deflated_above_the_minimum_size_only(start_server, worker_layer):
    server = start_server("--ws-compression", "--ws-compression-min-size", "1000")
    client, headers, reply_channel = open_raw(server, worker_layer)
    try:
        assert headers["sec-websocket-extensions"].startswith("permessage-deflate")
        small = "x" * 999  # compresses very well, but is below the minimum
        worker_layer.send(reply_channel, {"text": small})
        first, payload = client.read_raw_frame()
        assert first == 0x81 and payload == small.encode()  # FIN, text, RSV1 clear
        worker_layer.send(reply_channel, {"text": BIG})
        first, payload = client.read_raw_frame()
        assert first == 0xC1, hex(first)  # FIN, RSV1 (compressed), text
        assert len(payload) < len(BIG) / 3
        inflater = zlib.decompressobj(-15)  # the client keeps its window (context takeover)
        assert inflate(payload, inflater) == BIG.encode()
        # The next one may refer back to the first: with the same window it inflates to the same text.
        worker_layer.send(reply_channel, {"text": BIG})
        first, again = client.read_raw_frame()
        assert first == 0xC1 and len(again) < len(payload) / 4
        assert inflate(again, inflater) == BIG.encode()
    finally:
        client.close()


def test_a_client_without_the_offer_gets_plain_frames(start_server, worker_layer):
    server = start_server("--ws-compression")
    client, headers, reply_channel = open_raw(server, worker_layer, offer="")
    try:
        assert "sec-websocket-extensions" not in headers
        worker_layer.send(reply_channel, {"text": BIG})
        first, payload = client.read_raw_frame()
        assert first == 0x81 and payload == BIG.encode()
    finally:
        client.close()


def test_no_context_takeover_is_announced_and_each_message_stands_alone(start_server, worker_layer):
    server = start_server("--ws-compression", "--ws-compression-no-context-takeover")
    client, headers, reply_channel = open_raw(server, worker_layer)
    try:
        header = headers["sec-websocket-extensions"]
        assert "server_no_context_takeover" in header and "client_no_context_takeover" in header, header
        frames = []
        for _ in range(2):
            worker_layer.send(reply_channel, {"text": BIG})
            first, payload = client.read_raw_frame()
            assert first == 0xC1
            frames.append(payload)
        assert frames[0] == frames[1]  # nothing carried over from the first
        assert all(inflate(p) == BIG.encode() for p in frames)  # each with a fresh window
        # The client, told not to keep context either, sends standalone messages, which are inflated.
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = (compressor.compress(BIG.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        client.send_raw(0xC1, data)
        assert receive(worker_layer, "websocket.receive")["text"] == BIG
    finally:
        client.close()


def test_the_client_asking_for_server_no_context_takeover_is_honoured(start_server, worker_layer):
    server = start_server("--ws-compression")
    ws, message = open_ws(server, worker_layer, **deflating(server_no_context_takeover=True))
    with ws:
        assert "server_no_context_takeover" in extensions_header(ws)
        for _ in range(3):
            worker_layer.send(message["reply_channel"], {"text": BIG})
            assert ws.recv(timeout=5) == BIG


def test_a_small_window_the_client_asks_for_is_used(start_server, worker_layer):
    """A client asking for a 512-byte window (server_max_window_bits=9) gets frames it can inflate with one."""
    server = start_server("--ws-compression")
    long_text = "".join(random.Random(3).choice("abcdefgh ") for _ in range(3000)) * 2
    client, headers, reply_channel = open_raw(server, worker_layer, "permessage-deflate; server_max_window_bits=9")
    try:
        assert "server_max_window_bits=9" in headers["sec-websocket-extensions"]
        inflater = zlib.decompressobj(-9)
        for _ in range(2):
            worker_layer.send(reply_channel, {"text": long_text})
            first, payload = client.read_raw_frame()
            assert first == 0xC1
            assert inflate(payload, inflater) == long_text.encode()
    finally:
        client.close()


def test_flags_need_ws_compression_and_sane_values(capsys):
    from interface_server.cli import main

    assert main(["--ws-compression-level", "3", "x:y"]) == 2
    assert "--ws-compression-level needs --ws-compression" in capsys.readouterr().err
    assert main(["--ws-compression", "--ws-compression-level", "10", "x:y"]) == 2
    assert "--ws-compression-level must be 0 to 9" in capsys.readouterr().err
    assert main(["--ws-compression", "--ws-compression-min-size", "-1", "x:y"]) == 2
    assert "--ws-compression-min-size must be 0 or more" in capsys.readouterr().err


# -- one message to many sockets --------------------------------------------------------------


def _broadcast_clients(server, layer, group: str):
    """Sockets of every kind in one group: deflating with and without context takeover, a small window,
    and clients that did not offer the extension at all."""
    kinds = (
        [("takeover", deflating())] * 6
        + [("no-takeover", deflating(server_no_context_takeover=True))] * 4
        + [("window-10", deflating(server_max_window_bits=10))] * 2
        + [("plain", {})] * 4
    )
    clients = []
    for kind, options in kinds:
        ws, message = open_ws(server, layer, **options)
        layer.group_add(group, message["reply_channel"])
        clients.append((kind, ws, message["reply_channel"]))
    return clients


@pytest.mark.parametrize("mode", ["shared", "per-socket"])
def test_a_broadcast_reaches_every_kind_of_socket_intact(start_server, worker_layer, key_prefix, mode):
    """Group messages interleaved with each socket's own: every client inflates exactly what was sent.

    With context takeover a client's window holds every compressed message it got, the shared ones too;
    a socket whose own stream forgot to restart after a shared frame would send bytes that inflate to
    garbage (or fail), which the `websockets` client reports.
    """
    args = ["--ws-compression"] + (["--ws-compression-per-socket"] if mode == "per-socket" else [])
    server = start_server(*args)
    group = f"{key_prefix.rstrip(':')}-room"
    clients = _broadcast_clients(server, worker_layer, group)
    rng = random.Random(7)
    try:
        for round_ in range(6):
            text = BIG.replace("alice", f"user{round_}") + "".join(rng.choice("xyz") for _ in range(50))
            worker_layer.send_group(group, {"text": text})
            own = {rc: f"{BIG} for {rc} #{round_}" for _, _, rc in clients}
            for rc, mine in own.items():
                worker_layer.send(rc, {"text": mine})
            for kind, ws, rc in clients:
                assert ws.recv(timeout=10) == text, kind
                assert ws.recv(timeout=10) == own[rc], kind
        for kind, ws, _ in clients:
            header = extensions_header(ws)
            assert header.startswith("permessage-deflate") == (kind != "plain"), (kind, header)
    finally:
        for _, ws, _ in clients:
            ws.close()


def test_a_broadcast_is_deflated_once_and_sent_as_the_same_bytes(start_server, worker_layer, key_prefix):
    """Raw clients see one frame for all: the same compressed bytes on every deflating socket, the plain text
    on a socket that did not offer the extension."""
    server = start_server("--ws-compression", "--ws-compression-no-context-takeover")
    group = f"{key_prefix.rstrip(':')}-room"
    clients = [open_raw(server, worker_layer) for _ in range(8)]
    plain = open_raw(server, worker_layer, offer="")
    try:
        for _, _, rc in clients + [plain]:
            worker_layer.group_add(group, rc)
        worker_layer.send_group(group, {"text": BIG})
        frames = {client.read_raw_frame() for client, _, _ in clients}
        assert len(frames) == 1
        ((first, payload),) = frames
        assert first == 0xC1 and inflate(payload) == BIG.encode()
        assert plain[0].read_raw_frame() == (0x81, BIG.encode())
    finally:
        for client, _, _ in clients + [plain]:
            client.close()


def test_many_compressing_sockets_each_inflate_every_message_with_their_own_window(
    start_server, worker_layer, key_prefix
):
    """100 sockets that keep their window (as browsers do) and 10 that did not offer the extension, in one
    group: group messages interleaved with messages of their own, each socket reading and inflating every
    frame as its client would. Shared frames refer back to earlier shared text; a wrong window is garbage."""
    # Room for every socket's disconnect (nobody reads them): the default 100 would hold the server's exit.
    server = start_server("--ws-compression", layer_options={"capacity": 1000})
    group = f"{key_prefix.rstrip(':')}-many"
    clients = [open_raw(server, worker_layer) for _ in range(100)]
    clients += [open_raw(server, worker_layer, offer="") for _ in range(10)]
    inflaters = [zlib.decompressobj(-15) for _ in clients]
    rng = random.Random(11)
    try:
        for _, _, rc in clients:
            worker_layer.group_add(group, rc)
        deflated = 0
        for round_ in range(5):
            text = BIG.replace("hello", f"round {round_}") + "".join(rng.choice("abc") for _ in range(40))
            worker_layer.send_group(group, {"text": text})
            singled = set(rng.sample(range(len(clients)), 20))
            for i in singled:
                worker_layer.send(clients[i][2], {"text": f"{BIG} just for {i} in {round_}"})
            for i, ((client, headers, _), inflater) in enumerate(zip(clients, inflaters, strict=True)):
                client.sock.settimeout(10)
                expected = [text] + ([f"{BIG} just for {i} in {round_}"] if i in singled else [])
                for want in expected:
                    first, payload = client.read_raw_frame()
                    if first & 0x40:
                        assert headers.get("sec-websocket-extensions"), i
                        deflated += 1
                        payload = inflate(payload, inflater)
                    assert payload == want.encode(), (i, round_)
        assert deflated >= 100 * 5  # every compressing socket got every message compressed
    finally:
        for client, _, _ in clients:
            client.close()


# -- hostile clients ----------------------------------------------------------------------------


def test_corrupt_compressed_data_closes_that_socket_only(start_server, worker_layer, key_prefix):
    server = start_server("--ws-compression")
    group = f"{key_prefix.rstrip(':')}-room"
    good, message = open_ws(server, worker_layer, **deflating())
    worker_layer.group_add(group, message["reply_channel"])
    hostile, _, hostile_rc = open_raw(server, worker_layer)
    worker_layer.group_add(group, hostile_rc)
    try:
        hostile.send_raw(0xC1, b"\xff\xfe\xfd garbage, not deflate")  # RSV1 set, payload no inflater accepts
        hostile.sock.settimeout(5)
        frames = []
        while True:
            first, payload = hostile.read_raw_frame()
            frames.append(first)
            if first & 0x0F == 0x8:
                break
        code = struct.unpack("!H", payload[:2])[0]
        assert code == 1007, (code, payload)  # invalid frame payload data
        hostile.wait_eof(5)
        disconnect = receive(worker_layer, "websocket.disconnect")
        assert disconnect["reply_channel"] == hostile_rc
        worker_layer.send_group(group, {"text": BIG})
        assert good.recv(timeout=5) == BIG
        good.send("still here")
        assert receive(worker_layer, "websocket.receive")["text"] == "still here"
    finally:
        good.close()
        hostile.close()


def test_a_decompression_bomb_is_closed_with_1009(start_server, worker_layer):
    server = start_server("--ws-compression", "--max-ws-message-size", "65536")
    good, message = open_ws(server, worker_layer, **deflating())
    hostile, _, hostile_rc = open_raw(server, worker_layer)
    try:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = (compressor.compress(b"\0" * 50_000_000) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        assert len(bomb) < 100_000
        hostile.send_raw(0xC2, bomb)
        hostile.sock.settimeout(5)
        while True:
            first, payload = hostile.read_raw_frame()
            if first & 0x0F == 0x8:
                break
        assert struct.unpack("!H", payload[:2])[0] == 1009
        assert receive(worker_layer, "websocket.disconnect")["reply_channel"] == hostile_rc
        worker_layer.send(message["reply_channel"], {"text": BIG})
        assert good.recv(timeout=5) == BIG
    finally:
        good.close()
        hostile.close()


# -- a browser ---------------------------------------------------------------------------------

PAGE_SCRIPT = """new Promise((resolve) => {
    const ws = new WebSocket(%r);
    const got = [];
    ws.onmessage = (e) => {
        got.push(e.data);
        if (got.length === %d) { resolve({extensions: ws.extensions, got}); ws.close(); }
    };
    ws.onclose = (e) => resolve({closed: e.code, extensions: ws.extensions, got});
    setTimeout(() => resolve({timeout: true, got}), 15000);
    window.__ws = ws;
})"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
def test_chromium_negotiates_deflate_and_reads_shared_and_own_frames(start_server, worker_layer, key_prefix):
    """Chromium offers permessage-deflate by default and keeps context: group frames (shared) interleaved
    with its own (its socket's stream, restarted after each shared frame) all arrive intact."""
    server = start_server("--ws-compression")
    group = f"{key_prefix.rstrip(':')}-room"
    others = []
    for _ in range(3):
        ws, message = open_ws(server, worker_layer, **deflating())
        worker_layer.group_add(group, message["reply_channel"])
        others.append(ws)
    sent = [BIG, BIG + " (own)", "short", BIG.replace("alice", "bob"), BIG + " (own again)", BIG.replace("a", "4")]
    order = ["group", "own", "own", "group", "own", "group"]
    result: dict = {}

    def browse() -> None:
        try:
            with Browser() as browser:
                page = browser.page()
                result.update(page.evaluate(PAGE_SCRIPT % (f"{server.ws_url}/chat/", len(sent)), timeout=30))
        except Exception as exc:  # reported by the assertions below
            result["error"] = repr(exc)

    thread = threading.Thread(target=browse, daemon=True)
    thread.start()
    try:
        message = receive(worker_layer, "websocket.connect", timeout=30)
        assert "error" not in result, result
        reply_channel = message["reply_channel"]
        worker_layer.send(reply_channel, {"accept": True})
        worker_layer.group_add(group, reply_channel)
        for text, where in zip(sent, order, strict=True):
            if where == "group":
                worker_layer.send_group(group, {"text": text})
            else:
                worker_layer.send(reply_channel, {"text": text})
        thread.join(40)
        assert not thread.is_alive()
        assert result.get("extensions", "").startswith("permessage-deflate"), result
        assert result["got"] == sent
        for ws in others:
            assert [ws.recv(timeout=5) for _ in range(3)] == [
                t for t, w in zip(sent, order, strict=True) if w == "group"
            ]
    finally:
        for ws in others:
            ws.close()
