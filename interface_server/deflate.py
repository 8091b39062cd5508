"""permessage-deflate (RFC 7692) for the server's WebSockets, with a message sent to many sockets compressed once.

Autobahn negotiates the extension (the offer a client makes, the answer
`accept_offer` builds) and inflates what clients send. What the server
sends is framed and deflated here instead of by Autobahn's `sendMessage`:

- Each socket that negotiated the extension gets a `SocketCompressor`. It
  sends a message shorter than `min_size` as a plain frame (RSV1 clear: the
  RFC lets every message choose), and deflates the others with its own
  stream, which keeps its history between messages ("context takeover")
  unless the client or `--ws-compression-no-context-takeover` ruled it out.
- A message that several sockets of this server receive (a group send
  arrives as one push that the layer fans out here, so each member's copy
  is delivered in the same few reactor turns) is deflated once into a frame
  every such socket takes as it is (`SharedFrames`, keyed by content).

What a frame may refer back to is the client's inflate window: the text of
the compressed messages it received before (plain ones do not enter it).
`SharedFrames` keeps, for each run of shared frames, the tail of the window
it leaves behind (`_Node`): sockets that received the same shared frames
since their window was last unknown sit on the same node, and the next
group message is deflated once for all of them with that tail as its
dictionary. In a room that only gets group messages, that is context
takeover for one deflate per server, not one per socket. A socket whose
window is unknown (it has just sent something with its own stream, or
asked for no context takeover) is at the root node, whose frames refer to
nothing before them and are valid whatever the window holds.

A socket with context takeover that meets a message before any other
socket did sends it with its own stream (a message meant for that socket
alone keeps its stream's ratio) and goes back to the root; the next socket
to send it makes the shared frame. After a shared compressed frame, the
socket's own stream restarts: the shared text is in the client's window
where that stream did not put it, so its back-references would point at
the wrong bytes. A fresh stream makes none.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from autobahn.websocket.compress import PerMessageDeflate, PerMessageDeflateOffer, PerMessageDeflateOfferAccept

DEFAULT_LEVEL = 6
DEFAULT_MIN_SIZE = 256
MEM_LEVEL = 8
"""zlib's default: the hash tables' size. Lower saves a little memory per deflate stream and costs ratio."""
MAX_WINDOW_BITS = 15

SHARED_ENTRIES = 64
"""Shared frames and first-sight marks `SharedFrames` keeps at most (the oldest is forgotten first)."""
SHARED_BYTES = 8 * 1024 * 1024
"""Bytes (messages, their frames and the window tails they leave) `SharedFrames` keeps at most."""
SHARED_LARGEST = 1024 * 1024
"""A message longer than this is never shared: keeping it would push out all the others."""


@dataclass(frozen=True)
class CompressionSettings:
    """`--ws-compression*`: how the server deflates what it sends (None in the config: no compression)."""

    level: int = DEFAULT_LEVEL
    """zlib level, 1 (fastest) to 9 (smallest); 0 stores without compressing."""
    min_size: int = DEFAULT_MIN_SIZE
    """Messages shorter than this (bytes) are sent as plain frames."""
    no_context_takeover: bool = False
    """Neither side keeps a deflate stream between messages (no memory per idle socket, a worse ratio)."""
    shared: bool = True
    """Deflate a message sent to several sockets once; False deflates each copy on its own (to compare)."""
    max_message_size: int | None = None
    """Largest message a client may send once inflated (the server's `--max-ws-message-size`)."""

    def __post_init__(self) -> None:
        if not 0 <= self.level <= 9:
            raise ValueError(f"the compression level must be 0 to 9, not {self.level}")
        if self.min_size < 0:
            raise ValueError(f"the minimum size to compress must be 0 or more, not {self.min_size}")


# -- negotiation -------------------------------------------------------------------------------


class _Accept(PerMessageDeflateOfferAccept):
    """Autobahn's accept, which also says `server_no_context_takeover` when the server chose it.

    Autobahn's own only repeats it when the client asked for it, so a
    client would keep a window for nothing; the RFC (7.1.1.1) lets a
    server include it in any response.
    """

    def get_extension_string(self) -> str:
        text = super().get_extension_string()
        if self.no_context_takeover and "server_no_context_takeover" not in text:  # not twice once Autobahn says it
            text += "; server_no_context_takeover"
        return text


def accept_offer(settings: CompressionSettings) -> Callable[[Sequence[Any]], PerMessageDeflateOfferAccept | None]:
    """The `perMessageCompressionAccept` option: take the client's first permessage-deflate offer.

    With `no_context_takeover`, the answer asks the client not to keep
    context either (`client_no_context_takeover`), so the server inflates
    each message with a fresh stream and keeps nothing between them.
    """

    def accept(offers: Sequence[Any]) -> PerMessageDeflateOfferAccept | None:
        for offer in offers:
            if isinstance(offer, PerMessageDeflateOffer):
                off = settings.no_context_takeover
                return _Accept(
                    offer,
                    request_no_context_takeover=off and offer.accept_no_context_takeover,
                    no_context_takeover=True if off else None,
                    max_message_size=settings.max_message_size,
                )
        return None

    return accept


# -- frames -----------------------------------------------------------------------------------

_FIN = 0x80
_RSV1 = 0x40  # "this message is compressed"
_TEXT, _BINARY = 0x1, 0x2


def frame(payload: bytes, binary: bool, compressed: bool = False) -> bytes:
    """One unmasked, unfragmented server frame carrying `payload`."""
    first = _FIN | (_RSV1 if compressed else 0) | (_BINARY if binary else _TEXT)
    size = len(payload)
    if size < 126:
        head = bytes((first, size))
    elif size < 65536:
        head = struct.pack("!BBH", first, 126, size)
    else:
        head = struct.pack("!BBQ", first, 127, size)
    return head + payload


def new_stream(level: int, window_bits: int) -> Any:
    """A raw deflate stream (no zlib header) with a window of `2 ** window_bits` bytes."""
    return zlib.compressobj(level, zlib.DEFLATED, -window_bits, MEM_LEVEL)


def deflate(stream: Any, payload: bytes) -> bytes:
    """`payload` through `stream`, ended as the RFC says: a sync flush, without its final 00 00 ff ff."""
    return (stream.compress(payload) + stream.flush(zlib.Z_SYNC_FLUSH))[:-4]


class _Node:
    """A known tail of a client's inflate window, and the frame that leads to it from its parent.

    The root (serial 0) knows nothing: its children are deflated with a
    fresh stream. A marker (serial -1, no frame) only records which socket
    met a message first and sent it with its own stream.
    """

    __slots__ = ("serial", "window", "frame", "compressed", "size", "first", "users")

    def __init__(self, serial: int, first: int | None = None, size: int = 0) -> None:
        self.serial = serial
        self.window = b""  # the last MAX_WINDOW bytes the clients at this node inflated
        self.frame: bytes | None = None
        self.compressed = False
        self.size = size  # bytes held: payload, frame and window
        self.first = first  # id() of the socket that met it first (markers)
        self.users = 0  # sockets that took this frame


MAX_WINDOW = 1 << MAX_WINDOW_BITS
_MARKER = -1


class SharedFrames:
    """The frames of the last messages sent to several sockets, each deflated once per window it follows.

    Keyed by (node, window bits, binary, payload): two copies of one group
    message are equal bytes, whichever layer delivered them and however it
    decoded them. At most `SHARED_ENTRIES` entries and about `SHARED_BYTES`
    bytes (payloads, frames and window tails) are kept, the oldest
    forgotten first; a socket keeps its own node alive while it sits on it.

    How many deflates a group message costs: one per distinct window tail
    among its recipients that at least two sockets share (a tail only one
    socket has is not worth one: that socket gets the fresh-stream frame),
    plus the fresh one, plus the first copy, sent with its socket's own
    stream when it has context takeover. In a room that only gets group
    messages: two, whatever the number of sockets.
    """

    def __init__(self, level: int, entries: int = SHARED_ENTRIES, max_bytes: int = SHARED_BYTES) -> None:
        self.level = level
        self.entries = entries
        self.max_bytes = max_bytes
        self.root = _Node(0)
        self._kept: dict[tuple[int, int, bool, bytes], _Node] = {}
        self._serial = 0
        self._bytes = 0
        self.deflated = 0
        """Messages deflated here (one per shared message and window it follows): what the tests check."""

    def __len__(self) -> int:
        return len(self._kept)

    def frame_for(self, payload: bytes, binary: bool, socket: SocketCompressor) -> bytes | None:
        """The shared frame that sends `payload` on `socket` (moving it to the node that frame leads to),
        or None when `socket` should send it with its own stream."""
        bits = socket.window_bits
        at = socket.node if socket.takeover else self.root
        if at.users < 2:
            at = self.root  # a window tail no other socket has: the fresh-stream frame serves it
        key = (at.serial, bits, binary, payload)
        node = self._kept.get(key)
        if node is None:
            if len(payload) > SHARED_LARGEST:
                return None
            if socket.takeover:
                seen = (_MARKER, bits, binary, payload)
                marker = self._kept.get(seen)
                if marker is None:
                    # First sight: maybe a message for this socket alone, which its own stream sends best.
                    # (Its id, not the socket: a closed socket's stream is not kept alive by a marker. A
                    # reused id only makes another socket send the message with its own stream: still right.)
                    self._keep(seen, _Node(_MARKER, first=id(socket), size=len(payload)))
                    return None
                if marker.first == id(socket):
                    return None  # the same socket again, nobody else yet: not a broadcast
            self._serial += 1
            node = _Node(self._serial)
            self._make(node, at, payload, binary, bits)
            self._keep(key, node)
        node.users += 1
        if node.compressed and socket.takeover:
            socket.node = node
        return node.frame

    def _make(self, node: _Node, at: _Node, payload: bytes, binary: bool, window_bits: int) -> None:
        """Deflate `payload` once for every client whose window ends with `at.window`."""
        history = at.window[-(1 << window_bits) :]
        if history:
            stream = zlib.compressobj(self.level, zlib.DEFLATED, -window_bits, MEM_LEVEL, zdict=history)
        else:
            stream = new_stream(self.level, window_bits)
        compressed = deflate(stream, payload)
        self.deflated += 1
        # Plain when deflate does not make it smaller: the clients' windows then stay as they are.
        if len(compressed) < len(payload):
            node.frame = frame(compressed, binary, compressed=True)
            node.compressed = True
            node.window = (at.window + payload)[-MAX_WINDOW:]
        else:
            node.frame = frame(payload, binary)
        node.size = len(payload) + len(node.frame) + len(node.window)

    def _keep(self, key: tuple[int, int, bool, bytes], node: _Node) -> None:
        self._kept[key] = node
        self._bytes += node.size
        kept = self._kept
        while len(kept) > self.entries or (self._bytes > self.max_bytes and len(kept) > 1):
            self._bytes -= kept.pop(next(iter(kept))).size


# -- one socket ---------------------------------------------------------------------------------


class SocketCompressor:
    """Frames what one socket sends, with what it negotiated (`pmce`: Autobahn's `PerMessageDeflate`)."""

    __slots__ = ("level", "min_size", "window_bits", "takeover", "shared", "stream", "node")

    def __init__(self, pmce: PerMessageDeflate, settings: CompressionSettings, shared: SharedFrames | None) -> None:
        self.level = settings.level
        self.min_size = max(1, settings.min_size)  # an empty message is never deflated
        self.window_bits = pmce.server_max_window_bits or MAX_WINDOW_BITS
        self.takeover = not pmce.server_no_context_takeover
        self.shared = shared
        self.stream: Any = None  # this socket's own deflate stream, kept between messages with context takeover
        self.node = shared.root if shared is not None else None  # what this socket's client window ends with

    def frame(self, payload: bytes, binary: bool, plain: bool = False) -> bytes:
        """The frame that sends `payload` on this socket (`plain`: never compress it)."""
        if plain or len(payload) < self.min_size:
            return frame(payload, binary)  # plain frames do not enter the client's window
        shared = self.shared
        if shared is not None:
            data = shared.frame_for(payload, binary, self)
            if data is not None:
                if self.takeover and data[0] & _RSV1:
                    self.stream = None  # see the module's docstring: the client's window now holds the shared text
                return data
            self.node = shared.root  # from here on the window holds what only this socket's stream knows
        stream = self.stream
        if stream is None:
            stream = new_stream(self.level, self.window_bits)
            if self.takeover:
                self.stream = stream
        return frame(deflate(stream, payload), binary, compressed=True)


class Compression:
    """The server's compression: its settings, the shared frames, and a compressor for each socket."""

    def __init__(self, settings: CompressionSettings) -> None:
        self.settings = settings
        self.shared = SharedFrames(settings.level) if settings.shared else None
        self.accept = accept_offer(settings)

    def for_socket(self, extensions_in_use: Sequence[Any]) -> SocketCompressor | None:
        """The compressor for a socket whose handshake chose `extensions_in_use` (None: it did not deflate)."""
        for extension in extensions_in_use:
            if isinstance(extension, PerMessageDeflate):
                return SocketCompressor(extension, self.settings, self.shared)
        return None
