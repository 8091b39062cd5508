"""Request framing that h11 accepts but this server refuses, because a proxy in front may read it differently.

h11 already refuses conflicting or malformed `Content-Length`, any
`Transfer-Encoding` but `chunked`, and chunk-size lines that are not hex.
It lets through, and the server refuses here:

- `Content-Length` together with `Transfer-Encoding` (either order): the
  classic request-smuggling split (RFC 9112 6.1 lets a server answer and close);
- `Transfer-Encoding` on an HTTP/1.0 request, whose framing RFC 9112 6.1 calls faulty;
- an HTTP major version other than 1, such as the HTTP/2 connection preface
  `PRI * HTTP/2.0` sent to a plain HTTP/1.1 socket (505);
- a chunk size over 64 bits (h11 reads up to 20 hex digits; the size
  declared is read with `compat.declared_chunk_size`).
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_CHUNK_SIZE = 2**64 - 1


class FramingError(ValueError):
    """The request must be refused with `status` and the connection closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def check_request_framing(http_version: bytes, headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Raise `FramingError` for a request head h11 parsed but this server must not serve.

    `headers` are h11's (lowercase names).
    """
    if not http_version.startswith(b"1."):
        raise FramingError(505, f"HTTP/{http_version.decode('ascii', 'replace')} is not supported here (HTTP/1.x only)")
    names = {name for name, _ in headers}
    if b"transfer-encoding" in names:
        if b"content-length" in names:
            raise FramingError(400, "both Content-Length and Transfer-Encoding (RFC 9112 6.1)")
        if http_version == b"1.0":
            raise FramingError(400, "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1)")
