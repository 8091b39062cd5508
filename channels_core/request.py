"""The request side of the HTTP bridge: an `http.request` message as a Django `HttpRequest`.

`AsgiRequest` builds `META`, the path and the script name from the message.
A body streamed over `body_channel` is read by `BodyStream` lazily, chunk by
chunk, when the view first touches `body`, `POST`, `FILES` or `read()`; a
request the view never reads costs nothing.
"""

from __future__ import annotations

import time
from io import BytesIO
from typing import Any

from django import http
from django.conf import settings
from django.http import QueryDict, parse_cookie
from django.utils.functional import cached_property

from .exceptions import RequestAborted, RequestTimeout, ResponseLater
from .layers.contract import supports

# Header name (bytes, as sent) -> META key, or None for names that are dropped.
_META_KEYS: dict[bytes, str | None] = {}
_META_KEYS_MAX = 1024


def _meta_key(name: bytes | str) -> str | None:
    key = _META_KEYS.get(name)  # type: ignore[arg-type]
    if key is not None or name in _META_KEYS:
        return key
    text = name.decode("latin-1") if isinstance(name, bytes) else name
    lowered = text.lower()
    if "_" in text:
        # WSGI folds "-" and "_" together, so such a name could spoof a proxy's header (CVE-2015-0219).
        key = None
    elif lowered == "content-length":
        key = "CONTENT_LENGTH"
    elif lowered == "content-type":
        key = "CONTENT_TYPE"
    else:
        key = "HTTP_" + text.upper().replace("-", "_")
    if len(_META_KEYS) < _META_KEYS_MAX:
        _META_KEYS[name] = key  # type: ignore[index]
    return key


def script_name_of(content: dict) -> str:
    """The script name of a request: `FORCE_SCRIPT_NAME`, else the message's `root_path`."""
    return settings.FORCE_SCRIPT_NAME or content.get("root_path") or ""


class BodyStream:
    """The request body: `body` from the message, then the chunks of `body_channel`, read on demand.

    `read(n)` returns `n` bytes unless the body ends first (Django reads
    `DATA_UPLOAD_MAX_MEMORY_SIZE + 1` bytes in one call). A `{closed: True}`
    chunk raises `RequestAborted`; no chunk for `timeout` seconds raises
    `RequestTimeout`. Either error is remembered and raised again by every
    later read, and reported to `on_error` once.
    """

    batch = 8  # chunks fetched per round trip when several are waiting

    def __init__(self, first: bytes, channel_layer: Any, channel: str, timeout: float, on_error: Any = None) -> None:
        self._buf = first
        self._pos = 0
        self._layer = channel_layer
        self._channel = channel
        self._timeout = timeout
        self._on_error = on_error
        self._more = True  # chunks are still to come
        self._error: Exception | None = None
        self.closed = False

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return True

    def _fetch(self) -> list[bytes]:
        """The next chunk(s) of content; sets `_more` to False after the last one."""
        if self._error is not None:
            raise self._error
        layer = self._layer
        deadline = time.monotonic() + self._timeout
        receive_batch = layer.receive_batch if supports(layer, "batch") else None
        while True:
            if receive_batch is not None:
                got = receive_batch([self._channel], self.batch, block=True)
            else:
                channel, chunk = layer.receive([self._channel], block=True)
                got = [(channel, chunk)] if channel is not None else []
            if got:
                break
            if time.monotonic() >= deadline:
                return self._fail(RequestTimeout(f"no request body chunk on {self._channel} for {self._timeout}s"))
        parts = []
        for _, chunk in got:
            if chunk.get("closed"):
                return self._fail(RequestAborted("the client closed the connection while sending the body"))
            content = chunk.get("content") or b""
            if content:
                parts.append(content)
            if not chunk.get("more_content"):
                self._more = False
                break
        return parts

    def _fail(self, error: Exception) -> list[bytes]:
        self._error = error
        self._more = False
        if self._on_error is not None:
            self._on_error(error)
        raise error

    def _available(self) -> int:
        return len(self._buf) - self._pos

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._buf[self._pos :]] if self._pos < len(self._buf) else []
            while self._more:
                parts.extend(self._fetch())
            if self._error is not None:
                raise self._error
            self._buf, self._pos = b"", 0
            return parts[0] if len(parts) == 1 else b"".join(parts)
        while self._available() < size and self._more:
            self._append(self._fetch())
        if self._available() == 0 and self._error is not None:
            raise self._error
        data = self._buf[self._pos : self._pos + size]
        self._pos += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        while True:
            end = self._buf.find(b"\n", self._pos)
            limit = size is not None and size >= 0 and self._available() >= size
            if end >= 0 or limit or not self._more:
                break
            self._append(self._fetch())
        if end >= 0:
            stop = end + 1
            if size is not None and size >= 0:
                stop = min(stop, self._pos + size)
        elif size is not None and size >= 0:
            stop = self._pos + size
        else:
            stop = len(self._buf)
        if stop <= self._pos and self._error is not None:
            raise self._error
        data = self._buf[self._pos : stop]
        self._pos += len(data)
        return data

    def _append(self, parts: list[bytes]) -> None:
        if not parts:
            return
        rest = self._buf[self._pos :] if self._pos < len(self._buf) else b""
        self._buf = b"".join([rest, *parts]) if rest or len(parts) > 1 else parts[0]
        self._pos = 0

    def close(self) -> None:
        self.closed = True


class AsgiRequest(http.HttpRequest):
    """An `HttpRequest` built from an `http.request` message (a `Message` or its content dict)."""

    ResponseLater = ResponseLater

    # Seconds to wait for the next body chunk before giving up with RequestTimeout (-> 408).
    body_receive_timeout = 60

    def __init__(self, message: Any) -> None:
        self.message = message
        content = getattr(message, "content", message)
        self._content = content
        self.reply_channel = getattr(message, "reply_channel", None)
        self._read_started = False
        self.resolver_match = None
        self._body_error: Exception | None = None
        # Path and script name
        self.path = path = content["path"]
        self.script_name = script_name = script_name_of(content)
        if script_name and (path == script_name or path.startswith(script_name.rstrip("/") + "/")):
            self.path_info = path[len(script_name.rstrip("/")) :] or "/"
        else:
            self.path_info = path
        self.method = method = content["method"].upper()
        query_string = content.get("query_string", b"")
        if isinstance(query_string, bytes):
            query_string = query_string.decode("utf-8")  # UnicodeDecodeError -> 400 in the handler
        meta = {
            "REQUEST_METHOD": method,
            "QUERY_STRING": query_string,
            "SCRIPT_NAME": script_name,
            "PATH_INFO": self.path_info,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
        }
        client = content.get("client")
        if client:
            meta["REMOTE_ADDR"] = meta["REMOTE_HOST"] = client[0]
            meta["REMOTE_PORT"] = client[1]
        server = content.get("server")
        if server:
            meta["SERVER_NAME"] = server[0]
            meta["SERVER_PORT"] = str(server[1])
        else:
            meta["SERVER_NAME"] = "unknown"
            meta["SERVER_PORT"] = "0"
        headers = content.get("headers") or ()
        if isinstance(headers, dict):  # the pre-1.0 format
            headers = headers.items()
        for name, value in headers:
            key = _meta_key(name)
            if key is None:
                continue
            value = value.decode("latin-1") if isinstance(value, bytes) else value
            if key in meta:
                value = meta[key] + "," + value
            meta[key] = value
        self.META = meta
        self._set_content_type_params(meta)
        # The body: `body`, then whatever `body_channel` carries, read when first needed.
        body = content.get("body") or b""
        body_channel = content.get("body_channel")
        if body_channel:
            layer = getattr(message, "channel_layer", None)
            if layer is None:
                raise ValueError("a message with a body_channel needs a channel layer to read it from")
            self._stream = BodyStream(body, layer, body_channel, self.body_receive_timeout, self._set_body_error)
        else:
            self._stream = BytesIO(body)

    def _set_body_error(self, error: Exception) -> None:
        self._body_error = error

    def _get_scheme(self) -> str:
        return self._content.get("scheme") or "http"

    @cached_property
    def GET(self) -> QueryDict:
        return QueryDict(self.META["QUERY_STRING"], encoding=self._encoding)

    def _get_post(self):
        if not hasattr(self, "_post"):
            self._load_post_and_files()
        return self._post

    def _set_post(self, post) -> None:
        self._post = post

    def _get_files(self):
        if not hasattr(self, "_files"):
            self._load_post_and_files()
        return self._files

    POST = property(_get_post, _set_post)
    FILES = property(_get_files)

    @cached_property
    def COOKIES(self) -> dict[str, str]:
        return parse_cookie(self.META.get("HTTP_COOKIE", ""))

    def close(self) -> None:
        super().close()
        self._stream.close()
