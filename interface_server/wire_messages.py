"""The translation between wire events (HTTP requests and responses, WebSocket frames) and ASGI 1.0 channel messages.

Pure functions with no I/O and no reactor, so every rule is tested directly:
request parts -> `http.request` / `websocket.connect` messages (and the
limits on a request head), reply messages -> validated response parts ->
what goes on the wire (status line, headers with the `Content-Length` and
`Server` the server adds, body or none), or WebSocket actions.
`http_protocol` and `ws_protocol` only move these between h11/Autobahn
and the channel layer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

Header = tuple[bytes, bytes]
Address = tuple[str, int] | None


class BadRequest(ValueError):
    """The request cannot be turned into a message; answer 400."""


class BadReply(ValueError):
    """A reply message from the application breaks the message format."""


# -- requests ------------------------------------------------------------------------

MAX_HEAD_BYTES = 64 * 1024


def oversized_head(target: bytes, raw_headers: Iterable[Header], limit: int = MAX_HEAD_BYTES) -> tuple[int, str] | None:
    """`(status, text)` to refuse a complete request head over `limit` bytes with, or None.

    h11 only bounds an *incomplete* head (`max_incomplete_event_size`); one
    that arrives whole in a single read can be any size, so the same limit
    applies to complete ones: 414 for the target alone, else 431 for the
    target and the headers (each counted as `name: value` plus CRLF).
    """
    if len(target) > limit:
        return 414, "Request target too long."
    size = len(target) + sum(len(name) + len(value) + 4 for name, value in raw_headers)
    if size > limit:
        return 431, "Request header fields too large."
    return None


def clean_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[list[bytes]]:
    """Lowercase names, keep order and duplicates, drop names containing `_`.

    Names with underscores are dropped because WSGI-style environments fold
    `-` and `_` together, letting a client spoof a proxy's header
    (CVE-2015-0219).
    """
    return [[name.lower(), value] for name, value in raw if b"_" not in name]


def split_target(target: bytes) -> tuple[str, bytes]:
    """Split a request target into (decoded path, raw query string)."""
    raw_path, _, query = target.partition(b"?")
    if raw_path.startswith(b"http://") or raw_path.startswith(b"https://"):
        # absolute-form (proxies): keep only the path
        slash = raw_path.find(b"/", raw_path.find(b"//") + 2)
        raw_path = raw_path[slash:] if slash >= 0 else b"/"
    try:
        path = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the request path is not valid UTF-8 once percent-decoded") from None
    return path, query


@dataclass
class Peer:
    """Who is on the other end, after proxy headers are applied."""

    client: Address
    scheme: str


def apply_proxy_headers(headers: list[list[bytes]], client: Address, scheme: str) -> Peer:
    """Take the client address and scheme from X-Forwarded-For/-Port/-Proto.

    Only call this when the server runs behind a proxy that sets them
    (`--proxy-headers`); the leftmost X-Forwarded-For entry is the client.
    """
    forwarded_for = _header(headers, b"x-forwarded-for")
    if forwarded_for is not None:
        host = forwarded_for.split(b",")[0].strip().decode("latin-1")
        port_value = _header(headers, b"x-forwarded-port")
        try:
            port = int(port_value) if port_value is not None else 0
        except ValueError:
            port = 0
        client = (host, port)
    proto = _header(headers, b"x-forwarded-proto")
    if proto is not None:
        proto_text = proto.split(b",")[0].strip().decode("latin-1").lower()
        if proto_text in ("http", "https"):
            secure = proto_text == "https"
            scheme = ("wss" if secure else "ws") if scheme in ("ws", "wss") else proto_text
    return Peer(client, scheme)


def _header(headers: list[list[bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def root_path(headers: list[list[bytes]], default: str) -> tuple[str, list[list[bytes]]]:
    """The root path: a `Daphne-Root-Path` header (URL-encoded, set by a proxy) overrides `default`.

    The header is removed from what the application sees.
    """
    value = _header(headers, b"daphne-root-path")
    if value is None:
        return default, headers
    return unquote(value.decode("latin-1")), [h for h in headers if h[0] != b"daphne-root-path"]


def _address(address: Address) -> list[Any] | None:
    return [address[0], address[1]] if address is not None else None


@dataclass
class RequestInfo:
    """What the server knows about one HTTP request or WebSocket handshake."""

    method: str
    http_version: str
    target: bytes
    headers: list[list[bytes]]
    client: Address
    server: Address
    scheme: str
    root_path: str = ""
    path: str = field(init=False)
    query_string: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.path, self.query_string = split_target(self.target)


def build_request_info(
    method: bytes,
    http_version: bytes,
    target: bytes,
    raw_headers: Iterable[tuple[bytes, bytes]],
    client: Address,
    server: Address,
    scheme: str,
    default_root_path: str = "",
    proxy_headers: bool = False,
) -> RequestInfo:
    """Everything a request message needs, from the parsed request line and headers."""
    headers = clean_headers(raw_headers)
    if proxy_headers:
        peer = apply_proxy_headers(headers, client, scheme)
        client, scheme = peer.client, peer.scheme
    path_root, headers = root_path(headers, default_root_path)
    try:
        method_text = method.decode("ascii").upper()
    except UnicodeDecodeError:
        raise BadRequest("the request method is not ASCII") from None
    return RequestInfo(
        method=method_text,
        http_version=http_version.decode("ascii", "replace"),
        target=target,
        headers=headers,
        client=client,
        server=server,
        scheme=scheme,
        root_path=path_root,
    )


def http_request_message(
    info: RequestInfo, reply_channel: str, body: bytes = b"", body_channel: str | None = None
) -> dict[str, Any]:
    """The `http.request` message for a request."""
    message: dict[str, Any] = {
        "reply_channel": reply_channel,
        "http_version": info.http_version,
        "method": info.method,
        "scheme": info.scheme,
        "path": info.path,
        "query_string": info.query_string,
        "root_path": info.root_path,
        "headers": info.headers,
        "body": body,
        "client": _address(info.client),
        "server": _address(info.server),
    }
    if body_channel is not None:
        message["body_channel"] = body_channel
    return message


def http_disconnect_message(reply_channel: str, path: str) -> dict[str, Any]:
    return {"reply_channel": reply_channel, "path": path}


def websocket_connect_message(info: RequestInfo, reply_channel: str) -> dict[str, Any]:
    """The `websocket.connect` message (order 0) for a handshake."""
    return {
        "reply_channel": reply_channel,
        "scheme": info.scheme,
        "path": info.path,
        "query_string": info.query_string,
        "root_path": info.root_path,
        "headers": info.headers,
        "client": _address(info.client),
        "server": _address(info.server),
        "order": 0,
    }


def websocket_receive_message(reply_channel: str, path: str, order: int, payload: bytes, binary: bool) -> dict:
    if binary:
        return {"reply_channel": reply_channel, "path": path, "order": order, "bytes": payload, "text": None}
    return {
        "reply_channel": reply_channel,
        "path": path,
        "order": order,
        "bytes": None,
        "text": payload.decode("utf-8"),
    }


def websocket_disconnect_message(reply_channel: str, path: str, order: int, code: int) -> dict:
    return {"reply_channel": reply_channel, "path": path, "order": order, "code": code}


# -- HTTP replies ------------------------------------------------------------------------


@dataclass
class ResponsePart:
    """One validated `http.response` message (or chunk)."""

    status: int | None
    headers: list[tuple[bytes, bytes]]
    content: bytes
    more_content: bool


_RESPONSE_KEYS = {"status", "headers", "content", "more_content", "status_text"}


def _check_reply(message: Any, allowed: set[str], what: str) -> None:
    """BadReply unless `message` is a mapping whose keys are all in `allowed`; `what` names it in the error."""
    if not isinstance(message, Mapping):
        raise BadReply(f"{what} must be a dict, not {type(message).__name__}")
    unknown = set(message) - allowed
    if unknown:
        raise BadReply(f"unknown keys in {what}: {sorted(unknown)}")


def parse_response(message: Mapping[str, Any], started: bool) -> ResponsePart:
    """Validate an `http.response` message; `started` says whether a status was already sent."""
    _check_reply(message, _RESPONSE_KEYS, "a response message")
    status = message.get("status")
    if started and status is not None:
        raise BadReply("got a second response message with a status")
    if not started:
        if status is None:
            raise BadReply("the first response message needs a status")
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 999:
            raise BadReply(f"status must be an int between 100 and 999, not {status!r}")
    headers = _response_headers(message.get("headers", ())) if not started else []
    if started and message.get("headers"):
        raise BadReply("headers can only be sent with the status")
    content = message.get("content", b"")
    if not isinstance(content, bytes):
        raise BadReply(f"content must be bytes, not {type(content).__name__}")
    more = message.get("more_content", False)
    if not isinstance(more, bool):
        raise BadReply(f"more_content must be a bool, not {more!r}")
    return ResponsePart(status, headers, content, more)


def _response_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    if isinstance(headers, Mapping):
        headers = list(headers.items())
    out = []
    try:
        for name, value in headers:
            name_b = name.encode("latin-1") if isinstance(name, str) else name
            value_b = value.encode("latin-1") if isinstance(value, str) else value
            if not isinstance(name_b, bytes) or not isinstance(value_b, bytes):
                raise BadReply(f"header {name!r} must be bytes or str")
            out.append((_field_name(name_b), _field_value(name_b, value_b)))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, BadReply):
            raise
        raise BadReply(f"headers must be a list of [name, value] pairs, not {headers!r}") from None
    return out


# RFC 9110 5.1 and 5.5: a name is a token; a value is visible bytes (and obs-text) with
# SP/HTAB allowed inside it. Whitespace around a value is not part of it.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_OWS = b" \t"


def _field_name(name: bytes) -> bytes:
    if not _TOKEN.fullmatch(name):
        raise BadReply(f"header name {name!r} is not a token (letters, digits, !#$%&'*+-.^_`|~)")
    return name


def _field_value(name: bytes, value: bytes) -> bytes:
    """The value without the surrounding whitespace HTTP allows (Channels 1.x sends `Set-Cookie: b" a=b"`)."""
    control = _CONTROL.search(value)
    if control is not None:
        what = {b"\r": "a line break (CR)", b"\n": "a line break (LF)", b"\x00": "NUL"}.get(
            control.group(), f"the control character {control.group()!r}"
        )
        raise BadReply(f"header {name!r} contains {what}")
    return value.strip(_OWS)


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase for `status`; empty for a code HTTP does not name."""
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def forbids_body(method: str, status: int) -> bool:
    """A response to HEAD, or with a 1xx, 204 or 304 status, carries no body (RFC 9110 6.4.1)."""
    return method == "HEAD" or status in (204, 304) or status < 200


def has_framing(headers: Iterable[Header]) -> bool:
    """The application framed the body itself (`Content-Length` or `Transfer-Encoding`)."""
    return any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in headers)


@dataclass
class ResponseOutput:
    """What one `http.response` message puts on the wire, for h11 to frame.

    `status` is None for a message after the first (the status line is
    already out); then `headers` and `reason` are empty.
    """

    status: int | None
    headers: list[Header]
    reason: bytes
    body: bytes
    end: bool


def response_output(part: ResponsePart, method: str, server_header: bytes) -> ResponseOutput:
    """The status line, headers, body and end of one validated response message.

    The first message (the one with a status) gets a `Content-Length` when
    it is the whole response, has a body and sets no framing itself (else
    h11 sends it chunked), and a `Server` header unless the application set
    one. The content of a response that must have no body is dropped. A
    later message's content is dropped only for HEAD; a 204 or 304 that
    streams content in a later message is refused by h11 (the connection
    closes).
    """
    if part.status is None:
        return ResponseOutput(None, [], b"", b"" if method == "HEAD" else part.content, not part.more_content)
    bodyless = forbids_body(method, part.status)
    headers = part.headers
    if not part.more_content and not has_framing(headers) and not bodyless:
        headers = headers + [(b"content-length", b"%d" % len(part.content))]
    if not any(name.lower() == b"server" for name, _ in headers):
        headers = headers + [(b"server", server_header)]
    body = b"" if bodyless else part.content
    return ResponseOutput(part.status, headers, reason_phrase(part.status), body, not part.more_content)


def error_response(status: int, text: str, close: bool) -> tuple[list[Header], bytes]:
    """Headers and body of the server's own plain-text error response (`text` is the explanation)."""
    body = f"{status} {text}\n".encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    return headers, body


def raw_error_response(status: int) -> bytes:
    """A complete error response that closes the connection, for when h11's state cannot frame one."""
    reason = reason_phrase(status)
    body = b"%d %s\n" % (status, reason)
    return b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (
        status,
        reason,
        len(body),
        body,
    )


# -- WebSocket replies -------------------------------------------------------------------

_WS_KEYS = {"bytes", "text", "close", "accept"}


@dataclass
class WebSocketActions:
    """What to do with one reply message on a WebSocket, in order."""

    accept: bool = False
    reject: bool = False
    send: list[tuple[bytes, bool]] = field(default_factory=list)  # (payload, is_binary)
    close: int | None = None


class _LastData:
    """The actions of the last data-only reply to an open socket, reused while the next one is equal.

    A group message reaches this server's members one after the other in
    one reactor turn, each as a copy of one decoded dict: validating and
    encoding it once instead of once per socket is about a tenth of the
    CPU of a fan-out (py-spy, 2026-12-07). Only messages of `text` or
    `bytes` alone are kept (a str never equals bytes, so equality is
    exact), and a copy of the dict, so a caller changing its own later
    cannot change what the entry means. The actions are shared: callers
    only read them.
    """

    message: dict | None = None
    actions: WebSocketActions | None = None


def websocket_actions(message: Mapping[str, Any], connecting: bool) -> WebSocketActions:
    """The ASGI 1.0 accept/reject/send/close matrix for one reply message (the result is read-only).

    While the handshake is pending: `accept: True` accepts; `accept: False`
    rejects and ignores any data; data alone accepts implicitly; `close`
    alone rejects (HTTP 403), `close` with data accepts, sends, then closes.
    Once open, data is sent, then `close` closes; `accept` is ignored.
    """
    if not connecting and message == _LastData.message:
        return _LastData.actions  # type: ignore[return-value]
    actions = _websocket_actions(message, connecting)
    if not connecting and len(message) == 1 and ("text" in message or "bytes" in message):
        _LastData.message, _LastData.actions = dict(message), actions
    return actions


def _websocket_actions(message: Mapping[str, Any], connecting: bool) -> WebSocketActions:
    _check_reply(message, _WS_KEYS, "a WebSocket reply")
    data = message.get("bytes")
    text = message.get("text")
    if data is not None and text is not None:
        raise BadReply("a WebSocket reply cannot carry both bytes and text")
    if data is not None and not isinstance(data, bytes):
        raise BadReply(f"'bytes' must be bytes, not {type(data).__name__}")
    if text is not None and not isinstance(text, str):
        raise BadReply(f"'text' must be str, not {type(text).__name__}")
    actions = WebSocketActions()
    try:
        payload = (data, True) if data else ((text.encode("utf-8"), False) if text else None)
    except UnicodeEncodeError:  # a lone surrogate (found by fuzzing); msgpack cannot carry one, a local layer can
        raise BadReply("'text' is not valid Unicode (it holds a lone surrogate)") from None
    close = _close_code(message.get("close", False))
    if connecting:
        accept = message.get("accept")
        if accept is False:
            actions.reject = True
            return actions
        if accept or payload is not None:
            actions.accept = True
        elif close is not None:
            actions.reject = True
            return actions
        else:
            return actions
    if payload is not None:
        actions.send.append(payload)
    actions.close = close
    return actions


def _close_code(close: Any) -> int | None:
    if close is False or close is None or close == 0:
        return None
    if close is True:
        return 1000
    # 1011 (internal error) too: the worker sends it when a consumer crashes.
    if isinstance(close, int) and not isinstance(close, bool) and (close in (1000, 1011) or 3000 <= close <= 4999):
        return close
    raise BadReply(f"close must be True or a code (1000, 1011 or 3000-4999), not {close!r}")
