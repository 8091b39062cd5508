"""The fallback transports' wire format: URLs, Server-Sent Events, poll responses and POSTed frames.

Pure functions with no I/O and no reactor (as `wire_messages` is for HTTP
and WebSocket), so every rule is tested directly. `fallback_http` moves
these between h11 and `fallback_session.FallbackSession`.

URLs, under a reserved prefix (`--fallback-prefix`, default `/_channels/`):

- `GET  {prefix}sse{ws path}?{query}`: open a socket whose server-to-client
  frames come as an `text/event-stream` response;
- `GET  {prefix}poll{ws path}?{query}`: open a socket read by long-polling;
- `GET  {prefix}s/{session}/poll?ack={n}`: the events after `n`, waiting
  for one when there are none (long-polling only);
- `POST {prefix}s/{session}/send`: client-to-server frames, `{"seq": n,
  "frames": [...]}`;
- `POST {prefix}s/{session}/close`: the client closes (`{"code": n}`).

`{ws path}?{query}` is what the WebSocket URL would have been: the
consumer sees the same `path` and `query_string`. The reserved query
parameter `lastEventId` (EventSource cannot set headers) becomes the
`last-event-id` header of `websocket.connect` and leaves the query string.

Every event (server to client) is one JSON object: `{"id": n, "text": s}`,
`{"id": n, "bytes": base64}` or `{"id": n, "close": code}`, `n` counting
from 1 in each session; over SSE it is an event's `data:` line, and a group
history frame's event also gets an `id:` line, the session's last history
positions (`GROUP:EPOCH:OFFSET,...`), which a reconnecting `EventSource`
sends back as `Last-Event-ID` and the server turns into `since=` (see
`with_since`). An SSE response starts with `event: session`, whose data is
`{"session": id, "transport": "sse", "ping": seconds}`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from channels_core.layers.history import frame_position, parse_since

DEFAULT_PREFIX = "/_channels/"
SSE, POLL = "sse", "poll"
TRANSPORTS = (SSE, POLL)
OPEN, RECEIVE, SEND, CLOSE = "open", "receive", "send", "close"
LAST_EVENT_ID = b"lastEventId"
MAX_LAST_EVENT_ID = 1024
"""Bytes of a `Last-Event-ID` passed on to the application (a longer one is refused with 400)."""
MAX_HELD_POSTS = 8
"""POSTs of one session that may wait for an earlier `seq` (sent out of order); one further ahead gets 409."""


class BadFallbackRequest(ValueError):
    """A fallback request that cannot be served: `status` says how to answer."""

    def __init__(self, status: int, text: str, allow: bytes | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.allow = allow  # for a 405: the method the URL takes


@dataclass(frozen=True)
class Route:
    """What a request under the prefix asks for.

    `action` is `open` (with `transport` and `target`, the WebSocket's
    path and query), or `receive`, `send`, `close` (with `session`);
    `ack` is the poll's acknowledged event id.
    """

    action: str
    method: bytes
    transport: str | None = None
    target: bytes = b""
    session: str = ""
    ack: int = 0
    last_event_id: bytes | None = None


_METHODS = {OPEN: b"GET", RECEIVE: b"GET", SEND: b"POST", CLOSE: b"POST"}


def claims(target: bytes, prefix: bytes) -> bool:
    """Whether a request target is under the fallback prefix (so the fallback answers it, not the application)."""
    return target.startswith(prefix)


def route(method: bytes, target: bytes, prefix: bytes) -> Route:
    """The `Route` for a request under `prefix`; `BadFallbackRequest` (404, 405, 400) for anything else."""
    rest = target[len(prefix) :]
    for transport in TRANSPORTS:
        name = transport.encode()
        if rest.startswith(name + b"/"):
            inner, last_event_id = _split_last_event_id(rest[len(name) :])
            return _checked(method, Route(OPEN, method, transport, inner, last_event_id=last_event_id))
    if rest.startswith(b"s/"):
        path, _, query = rest[2:].partition(b"?")
        session, _, verb = path.partition(b"/")
        action = {b"poll": RECEIVE, b"send": SEND, b"close": CLOSE}.get(verb)
        if action is None or not session:
            raise BadFallbackRequest(404, "No such fallback URL.")
        try:
            session_text = session.decode("ascii")
        except UnicodeDecodeError:
            raise BadFallbackRequest(404, "No such session.") from None
        ack = _ack(query) if action == RECEIVE else 0
        return _checked(method, Route(action, method, session=session_text, ack=ack))
    raise BadFallbackRequest(404, "No such fallback URL.")


def _checked(method: bytes, found: Route) -> Route:
    allowed = _METHODS[found.action]
    if method != allowed:
        raise BadFallbackRequest(405, f"Use {allowed.decode()}.", allow=allowed)
    return found


def _ack(query: bytes) -> int:
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if name == b"ack":
            if not value.isdigit() or len(value) > 18:
                raise BadFallbackRequest(400, "ack must be a whole number.")
            return int(value)
    return 0


def _split_last_event_id(inner: bytes) -> tuple[bytes, bytes | None]:
    """The WebSocket target without the reserved `lastEventId` parameter, and that parameter's value."""
    path, sep, query = inner.partition(b"?")
    if not sep:
        return inner, None
    kept, value = [], None
    for part in query.split(b"&"):
        name, _, raw = part.partition(b"=")
        if name == LAST_EVENT_ID:
            value = unquote_to_bytes(raw.replace(b"+", b" "))
        else:
            kept.append(part)
    if value is not None and (len(value) > MAX_LAST_EVENT_ID or b"\r" in value or b"\n" in value or b"\0" in value):
        raise BadFallbackRequest(400, "lastEventId is too long or holds a line break.")
    return path + (b"?" + b"&".join(kept) if kept else b""), value


# -- events (server to client) -----------------------------------------------------------------


def text_event(event_id: int, text: str) -> dict[str, Any]:
    return {"id": event_id, "text": text}


def bytes_event(event_id: int, data: bytes) -> dict[str, Any]:
    return {"id": event_id, "bytes": base64.b64encode(data).decode("ascii")}


def close_event(event_id: int, code: int) -> dict[str, Any]:
    return {"id": event_id, "close": code}


def encode_json(value: Any) -> bytes:
    """One line of JSON (line breaks inside strings are escaped, as SSE's `data:` needs)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sse_event(event: dict[str, Any] | None = None, name: str | None = None, data: Any = None) -> bytes:
    """One Server-Sent Event: a socket event, or a named one (`session`, sent first, with the id).

    A socket event's `id:` line is its `_sse_id` (group history positions,
    see `history_id`), absent for others: the browser's `lastEventId`, sent
    back as `Last-Event-ID` when `EventSource` reconnects by itself, stays
    the last positions seen.
    """
    if event is not None:
        sse_id = event.get("_sse_id")
        body = {key: value for key, value in event.items() if key != "_sse_id"}
        head = b"id: %s\n" % sse_id.encode("ascii") if sse_id else b""
        return head + b"data: %s\n\n" % encode_json(body)
    return b"event: %s\ndata: %s\n\n" % (name.encode("ascii"), encode_json(data))


def history_id(positions: dict[str, str], text: str) -> str | None:
    """The SSE id after the text frame `text`: every group's last position, `GROUP:EPOCH:OFFSET,...`.

    `positions` (group -> "EPOCH:OFFSET", the session's) is updated when
    `text` is a group history frame (`channels_core.layers.history`); None
    for any other frame (its event gets no id). Past `MAX_LAST_EVENT_ID`
    bytes only the frame's own group is kept.
    """
    found = frame_position(text)
    if found is None:
        return None
    group, position = found
    positions[group] = str(position)
    joined = ",".join(f"{name}:{at}" for name, at in sorted(positions.items()))
    return joined if len(joined) <= MAX_LAST_EVENT_ID else f"{group}:{position}"


def with_since(target: bytes, last_event_id: bytes | None) -> bytes:
    """`target` with `since=GROUP:EPOCH:OFFSET` for each position in `last_event_id` (what `history_id` made),
    unless the query already has `since=` (the bridge sends its own) or there is none well formed.

    So a plain `EventSource` that reconnects by itself resumes its group streams: `@resume_groups`
    reads `since=` from the query string.
    """
    if not last_event_id:
        return target
    path, sep, query = target.partition(b"?")
    if any(part.startswith(b"since=") for part in query.split(b"&")):
        return target
    params = []
    for item in last_event_id.decode("latin-1").split(","):
        encoded = quote(item.strip(), safe="")
        if parse_since("since=" + encoded):
            params.append(b"since=" + encoded.encode("ascii"))
    if not params:
        return target
    return path + b"?" + b"&".join(([query] if query else []) + params)


SSE_PING = b": ping\n\n"
"""A comment line: keeps proxies from timing the stream out, and finds a dead client by a failed write."""


def event_size(event: dict[str, Any]) -> int:
    """Roughly the bytes an event costs in memory and on the wire (for the outbox's bound)."""
    return len(event.get("text") or event.get("bytes") or "") + 32


# -- frames (client to server) ---------------------------------------------------------------


@dataclass
class Post:
    """A parsed `send` body: its sequence number and its frames as (payload, is_binary)."""

    seq: int
    frames: list[tuple[bytes, bool]]


def parse_post(body: bytes, max_frame: int) -> Post:
    """`{"seq": n, "frames": [{"text": s} | {"bytes": base64}, ...]}`; BadFallbackRequest 400/413 otherwise."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadFallbackRequest(400, "The body is not JSON.") from None
    if not isinstance(value, dict) or set(value) - {"seq", "frames"}:
        raise BadFallbackRequest(400, 'The body must be {"seq": n, "frames": [...]}.')
    seq = value.get("seq")
    frames = value.get("frames")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq < 2**53:
        raise BadFallbackRequest(400, "seq must be a positive whole number.")
    if not isinstance(frames, list):
        raise BadFallbackRequest(400, "frames must be a list.")
    out = []
    for frame in frames:
        if not isinstance(frame, dict) or len(frame) != 1:
            raise BadFallbackRequest(400, 'Each frame is {"text": ...} or {"bytes": ...}.')
        if "text" in frame and isinstance(frame["text"], str):
            try:
                payload = frame["text"].encode("utf-8")
            except UnicodeEncodeError:
                raise BadFallbackRequest(400, "A text frame is not valid Unicode.") from None
            binary = False
        elif "bytes" in frame and isinstance(frame["bytes"], str):
            try:
                payload = base64.b64decode(frame["bytes"], validate=True)
            except (binascii.Error, ValueError):
                raise BadFallbackRequest(400, "A bytes frame is not base64.") from None
            binary = True
        else:
            raise BadFallbackRequest(400, 'Each frame is {"text": ...} or {"bytes": ...}.')
        if len(payload) > max_frame:
            raise BadFallbackRequest(413, f"A frame is over the {max_frame}-byte limit.")
        out.append((payload, binary))
    return Post(seq, out)


def parse_close(body: bytes) -> int:
    """The code of a `close` body (`{"code": n}`, empty: 1000); the codes a browser's WebSocket may send."""
    if not body.strip():
        return 1000
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadFallbackRequest(400, "The body is not JSON.") from None
    code = value.get("code", 1000) if isinstance(value, dict) else None
    if not isinstance(code, int) or isinstance(code, bool) or not (code == 1000 or 3000 <= code <= 4999):
        raise BadFallbackRequest(400, "code must be 1000 or 3000-4999.")
    return code


def post_limit(max_frame: int) -> int:
    """The largest `send` body taken: one frame of `max_frame` bytes, base64-encoded or escaped, and room."""
    return max_frame * 2 + 64 * 1024
