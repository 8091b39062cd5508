"""Generic WebSocket consumers, JSON consumers and stream multiplexing (Channels 1.x API).

    class Chat(JsonWebsocketConsumer):
        http_user = True                  # message.user is the browser's user, on every message
        groups = ["chat"]                 # joined on connect, left on disconnect

        def receive(self, content, **kwargs):
            self.group_send("chat", {"user": self.message.user.username, "said": content})

    channel_routing = [Chat.as_route(path=r"^/chat/$")]

`WebsocketDemultiplexer` carries several streams over one socket as
`{"stream": name, "payload": {...}}` frames, dispatching each to the
consumer registered for its stream, which answers through the
`multiplexer` keyword argument it is given.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from ..auth import channel_and_http_session_user_from_http, channel_session_user_from_http
from ..channel import Group
from ..exceptions import SendNotAvailableOnDemultiplexer
from .base import BaseConsumer

logger = logging.getLogger("channels_core")

SLIGHT_ORDERING_REMOVED = "Slight ordering is now always on. Please remove `slight_ordering=True`."


def _frame(text: str | None, bytes: bytes | None, close: bool | int) -> dict[str, Any]:
    message: dict[str, Any] = {}
    if close:
        message["close"] = close
    if text is not None:
        message["text"] = text
    elif bytes is not None:
        message["bytes"] = bytes
    else:
        raise ValueError("You must pass text or bytes")
    return message


def _describe(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class WebsocketConsumer(BaseConsumer):
    """A WebSocket connection's three events as methods: `connect`, `receive`, `disconnect`.

    Flags: `http_user` (the browser's user is copied into the channel session
    on connect; `message.user` on every message), `http_user_and_session`
    (the same, plus `message.http_session` on every message), both implying
    `channel_session_user`; `strict_ordering` (runs the consumer in the
    socket's frame order, `channels_core.ordering.enforce_ordering`).
    `groups` (or `connection_groups(**kwargs)`) are joined on connect and
    left on disconnect. `self.path` is the socket's path.
    """

    method_mapping = {
        "websocket.connect": "raw_connect",
        "websocket.receive": "raw_receive",
        "websocket.disconnect": "raw_disconnect",
    }

    http_user = False
    http_user_and_session = False
    strict_ordering = False
    slight_ordering = False
    groups: Iterable[str] | None = None

    @classmethod
    def check_options(cls) -> None:
        """Reject flags that no longer exist (`slight_ordering`), at routing time rather than per message."""
        if cls.slight_ordering:
            raise ValueError(f"{cls.__qualname__}: {SLIGHT_ORDERING_REMOVED}")

    @classmethod
    def channel_names(cls) -> set[str]:
        cls.check_options()
        return super().channel_names()

    def get_handler(self, message: Any, **kwargs: Any) -> Callable[..., Any]:
        self.check_options()
        self.path = message.content.get("path")
        if self.http_user or self.http_user_and_session:
            self.channel_session_user = True
        handler = super().get_handler(message, **kwargs)
        if self.http_user_and_session:
            handler = channel_and_http_session_user_from_http(handler)
        elif self.http_user:
            handler = channel_session_user_from_http(handler)
        if self.strict_ordering:
            # Imported here: ordering is its own module, only needed by consumers that ask for it.
            from ..ordering import enforce_ordering

            handler = enforce_ordering(handler, slight=False)
        return handler

    def connection_groups(self, **kwargs: Any) -> Iterable[str]:
        """The groups this socket joins on connect and leaves on disconnect (default: `groups`)."""
        return self.groups or []

    def raw_connect(self, message: Any, **kwargs: Any) -> None:
        for group in self.connection_groups(**kwargs):
            Group(group, channel_layer=message.channel_layer).add(message.reply_channel)
        self.connect(message, **kwargs)

    def connect(self, message: Any, **kwargs: Any) -> None:
        """Called on `websocket.connect`; accepts the socket. Raise `DenyConnection` to reject it."""
        self.message.reply_channel.send({"accept": True})

    def raw_receive(self, message: Any, **kwargs: Any) -> None:
        # The interface server sends both keys, one of them None.
        text = message.content.get("text")
        if text is not None:
            self.receive(text=text, **kwargs)
        else:
            self.receive(bytes=message.content.get("bytes"), **kwargs)

    def receive(self, text: str | None = None, bytes: bytes | None = None, **kwargs: Any) -> None:
        """Called for each frame, with `text` or `bytes` set."""

    def send(self, text: str | None = None, bytes: bytes | None = None, close: bool | int = False) -> None:
        """Send a frame on this socket; `close=True` (or a code) closes it afterwards."""
        if self.kwargs.get("multiplexer") is not None:
            raise SendNotAvailableOnDemultiplexer(
                f"{type(self).__qualname__} runs behind a demultiplexer: reply with "
                "kwargs['multiplexer'].send(payload), which frames it for this stream"
            )
        self.message.reply_channel.send(_frame(text, bytes, close))

    @classmethod
    def group_send(cls, name: str, text: str | None = None, bytes: bytes | None = None, close: bool = False) -> None:
        """Send a frame to every socket in group `name`."""
        Group(name).send(_frame(text, bytes, close))

    def close(self, status: bool | int = True) -> None:
        """Close this socket (`status`: True for 1000, or a code 1000 / 3000-4999)."""
        self.message.reply_channel.send({"close": status})

    def raw_disconnect(self, message: Any, **kwargs: Any) -> None:
        for group in self.connection_groups(**kwargs):
            Group(group, channel_layer=message.channel_layer).discard(message.reply_channel)
        self.disconnect(message, **kwargs)

    def disconnect(self, message: Any, **kwargs: Any) -> None:
        """Called on `websocket.disconnect`, after the socket has left its groups."""


class JsonWebsocketConsumer(WebsocketConsumer):
    """A WebSocket consumer that speaks JSON: `receive(content)` gets decoded frames, `send(content)` encodes.

    A binary frame, or a text frame that is not JSON, goes to
    `invalid_frame(reason)`, which raises ValueError (the worker logs it and
    closes the socket with 1011). Override `decode_json`/`encode_json` to
    change the encoding.
    """

    def raw_receive(self, message: Any, **kwargs: Any) -> None:
        try:
            content = self.decode_frame(message)
        except ValueError as exc:
            self.invalid_frame(str(exc))
            return
        self.receive(content, **kwargs)

    def decode_frame(self, message: Any) -> Any:
        """The decoded JSON of a `websocket.receive` message; ValueError saying why if it has none."""
        text = message.content.get("text")
        if text is None:
            raise ValueError(
                f"{type(self).__qualname__} got a binary frame ({len(message.content.get('bytes') or b'')} bytes); "
                "it only accepts text frames holding JSON"
            )
        try:
            return self.decode_json(text)
        except ValueError as exc:
            raise ValueError(f"the frame is not valid JSON ({exc}): {_describe(text)}") from None

    def invalid_frame(self, reason: str) -> None:
        """A frame that cannot be decoded: raises ValueError (as Channels 1.x did). Override to answer instead."""
        raise ValueError(f"Invalid frame for {type(self).__qualname__} from {self.message.reply_channel}: {reason}")

    def receive(self, content: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Called with each frame's decoded JSON."""

    def send(self, content: Any, close: bool | int = False) -> None:  # type: ignore[override]
        """Send `content` as a JSON text frame."""
        super().send(text=self.encode_json(content), close=close)

    @classmethod
    def group_send(cls, name: str, content: Any, close: bool = False) -> None:  # type: ignore[override]
        """Send `content` as JSON to every socket in group `name`."""
        WebsocketConsumer.group_send(name, cls.encode_json(content), close=close)

    @classmethod
    def decode_json(cls, text: str) -> Any:
        return json.loads(text)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content)


class WebsocketMultiplexer:
    """Sends on one stream of a multiplexed socket: frames are `{"stream": stream, "payload": payload}`.

    A demultiplexer gives one to each of its consumers as `kwargs["multiplexer"]`.
    """

    stream: str | None = None
    reply_channel: Any = None

    def __init__(self, stream: str, reply_channel: Any) -> None:
        self.stream = stream
        self.reply_channel = reply_channel

    def send(self, payload: Any) -> None:
        """Send `payload` on this stream of this socket."""
        self.reply_channel.send(self.encode(self.stream, payload))

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content, cls=DjangoJSONEncoder)

    @classmethod
    def encode(cls, stream: str, payload: Any) -> dict[str, str]:
        """The reply message carrying `payload` on `stream`."""
        return {"text": cls.encode_json({"stream": stream, "payload": payload})}

    @classmethod
    def group_send(cls, name: str, stream: str, payload: Any, close: bool = False) -> None:
        """Send `payload` on `stream` to every socket in group `name`."""
        message: dict[str, Any] = cls.encode(stream, payload)
        if close:
            message["close"] = True
        Group(name).send(message)


class WebsocketDemultiplexer(JsonWebsocketConsumer):
    """Several streams over one socket: each `{"stream", "payload"}` frame goes to `consumers[stream]`.

    `consumers = {stream: consumer}` (consumer classes, functions, or a
    binding's `consumer`); each is called with a `multiplexer=` keyword
    argument to answer on its stream. On connect the socket is accepted and
    every consumer sees the connect; on disconnect every consumer sees it.
    A frame that is not JSON, not `{"stream": str, "payload": dict}`, or
    names an unknown stream goes to `invalid_frame(reason)`, which logs one
    warning and drops the frame: the socket and its other streams go on.
    """

    consumers: dict[str, Callable[..., Any]] = {}
    multiplexer_class: type = WebsocketMultiplexer

    def connect(self, message: Any, **kwargs: Any) -> None:
        self.message.reply_channel.send({"accept": True})
        for stream, consumer in self.consumers.items():
            self.dispatch_stream(consumer, stream, message, kwargs)

    def disconnect(self, message: Any, **kwargs: Any) -> None:
        # Every consumer must see the disconnect (to leave its groups), even if one of them fails.
        failure: BaseException | None = None
        for stream, consumer in self.consumers.items():
            try:
                self.dispatch_stream(consumer, stream, message, kwargs)
            except Exception as exc:
                if failure is not None:
                    logger.error("Stream %r consumer failed on disconnect too: %r", stream, exc)
                failure = failure or exc
        if failure is not None:
            raise failure

    def receive(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or "stream" not in content or "payload" not in content:
            self.invalid_frame(f'expected {{"stream": ..., "payload": {{...}}}}, got {_describe(content)}')
            return
        stream, payload = content["stream"], content["payload"]
        consumer = self.consumers.get(stream) if isinstance(stream, str) else None
        if consumer is None:
            self.invalid_frame(f"stream {_describe(stream)} is not mapped (known: {sorted(self.consumers)})")
            return
        if not isinstance(payload, dict):
            self.invalid_frame(f"the payload of stream {stream!r} must be an object, not {_describe(payload)}")
            return
        # The stream's consumer reads the payload as the frame's text (a JSON consumer decodes it again).
        self.dispatch_stream(consumer, stream, self.message, kwargs, text=self.encode_json(payload))

    def dispatch_stream(
        self, consumer: Callable[..., Any], stream: str, message: Any, kwargs: dict[str, Any], text: str | None = None
    ) -> Any:
        """Call one stream's consumer with its multiplexer, on its own copy of the message.

        The copy keeps what sub-consumers' decorators attach to the message
        (`channel_session`, `user`) from leaking from one stream to the next,
        while a session the demultiplexer itself holds is shared.
        """
        sub_message = copy.copy(message)
        if text is not None:
            sub_message.content = {**message.content, "text": text}
        multiplexer = self.multiplexer_class(stream, message.reply_channel)
        return consumer(sub_message, **{**kwargs, "multiplexer": multiplexer})

    def invalid_frame(self, reason: str) -> None:
        """Log a frame that cannot be dispatched and drop it. Override to answer the client or close."""
        logger.warning(
            "%s dropped a frame from %s (%s): %s",
            type(self).__qualname__,
            self.message.reply_channel,
            self.message.content.get("path"),
            reason,
        )

    def send(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        raise SendNotAvailableOnDemultiplexer("Use multiplexer.send of the multiplexer kwarg.")

    @classmethod
    def group_send(cls, name: str, stream: str, payload: Any, close: bool = False) -> None:  # type: ignore[override]
        raise SendNotAvailableOnDemultiplexer("Use WebsocketMultiplexer.group_send")
