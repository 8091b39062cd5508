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
  is delivered in the same few reactor turns) is deflated once, with a
  fresh stream, into a frame every compressing socket can take as it is:
  `SharedFrames` keeps the last few such frames, keyed by their content.
  Sockets without context takeover use it from the first copy. A socket
  with context takeover uses it from the second copy on (a message sent to
  one socket only keeps the better ratio of its own stream), and then
  restarts its own stream: the shared frame's text is now in the client's
  window, where the socket's stream did not put it, so that stream's
  back-references would point at the wrong bytes. A fresh stream makes no
  back-reference at all, which every client accepts.

A fresh-stream frame is valid for any client window at least as long as the
message (no back-reference can reach further than the message's own start),
so one frame serves every socket unless a client asked for a window smaller
than the message; those get one more frame made for their window size.
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
"""Messages whose shared frames are kept at most (the oldest is forgotten first)."""
SHARED_BYTES = 8 * 1024 * 1024
"""Bytes of messages (and their frames) kept at most by `SharedFrames`."""
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
        if self.no_context_takeover and not self.offer.request_no_context_takeover:
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


class _Shared:
    __slots__ = ("frames", "size", "first")

    def __init__(self, size: int, first: object) -> None:
        self.frames: dict[int, bytes] = {}  # window bits -> frame
        self.size = size
        self.first = first  # the socket that saw it first and sent it with its own stream (None: nobody)


class SharedFrames:
    """The frames of the last messages sent to several sockets, each deflated once with a fresh stream.

    Keyed by (payload, binary): two copies of one group message are equal
    bytes, whichever layer delivered them and however it decoded them. The
    first sight of a message only records it (`frame_for` answers None)
    unless the caller takes fresh-stream frames anyway; every later copy
    for another socket gets the same frame object (a message repeated to
    one socket is not a broadcast: that socket keeps using its own stream). At most `SHARED_ENTRIES` messages and
    `SHARED_BYTES` bytes are kept, the oldest forgotten first.
    """

    def __init__(self, level: int, entries: int = SHARED_ENTRIES, max_bytes: int = SHARED_BYTES) -> None:
        self.level = level
        self.entries = entries
        self.max_bytes = max_bytes
        self._kept: dict[tuple[bytes, bool], _Shared] = {}
        self._bytes = 0
        self.deflated = 0
        """Messages deflated here (one per shared message and window size): what a benchmark checks."""

    def __len__(self) -> int:
        return len(self._kept)

    def frame_for(
        self, payload: bytes, binary: bool, window_bits: int, socket: object, first_copy: bool
    ) -> bytes | None:
        """The shared frame for `payload`, or None when this copy should use `socket`'s own stream.

        `first_copy`: whether the caller takes a fresh-stream frame on a
        message's first sight (a socket without context takeover loses
        nothing by it). A message longer than the client's window gets a
        frame made for that window.
        """
        key = (payload, binary)
        entry = self._kept.get(key)
        if entry is None:
            size = len(payload)
            if size > SHARED_LARGEST:
                return None
            entry = self._kept[key] = _Shared(size, None if first_copy else socket)
            self._bytes += size
            self._forget_oldest()
            if not first_copy:
                return None
        elif entry.first is socket and not entry.frames:
            return None  # the same socket again, and nobody else yet
        bits = MAX_WINDOW_BITS if len(payload) <= 1 << window_bits else window_bits
        shared = entry.frames.get(bits)
        if shared is None:
            compressed = deflate(new_stream(self.level, bits), payload)
            self.deflated += 1
            # A fresh stream lets the frame go plain when deflate does not make it smaller.
            if len(compressed) < len(payload):
                shared = frame(compressed, binary, compressed=True)
            else:
                shared = frame(payload, binary)
            entry.frames[bits] = shared
            entry.size += len(shared)
            self._bytes += len(shared)
            self._forget_oldest()
        return shared

    def _forget_oldest(self) -> None:
        kept = self._kept
        while len(kept) > self.entries or (self._bytes > self.max_bytes and len(kept) > 1):
            oldest = next(iter(kept))
            self._bytes -= kept.pop(oldest).size


# -- one socket ---------------------------------------------------------------------------------


class SocketCompressor:
    """Frames what one socket sends, with what it negotiated (`pmce`: Autobahn's `PerMessageDeflate`)."""

    __slots__ = ("level", "min_size", "window_bits", "takeover", "shared", "stream")

    def __init__(self, pmce: PerMessageDeflate, settings: CompressionSettings, shared: SharedFrames | None) -> None:
        self.level = settings.level
        self.min_size = max(1, settings.min_size)  # an empty message is never deflated
        self.window_bits = pmce.server_max_window_bits or MAX_WINDOW_BITS
        self.takeover = not pmce.server_no_context_takeover
        self.shared = shared
        self.stream: Any = None  # this socket's own deflate stream, kept between messages with context takeover

    def frame(self, payload: bytes, binary: bool, plain: bool = False) -> bytes:
        """The frame that sends `payload` on this socket (`plain`: never compress it)."""
        if plain or len(payload) < self.min_size:
            return frame(payload, binary)
        if self.shared is not None:
            shared = self.shared.frame_for(payload, binary, self.window_bits, self, not self.takeover)
            if shared is not None:
                if self.takeover and shared[0] & _RSV1:
                    self.stream = None  # see the module's docstring: the client's window now holds the shared text
                return shared
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
