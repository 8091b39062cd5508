"""The HTTP bridge: `http.request` messages in, Django views run, `http.response` messages out.

- `AsgiRequest` (in `request.py`, re-exported here: `channels_core.handler.AsgiRequest`
  is the 1.x import path) turns an `http.request` message into an `HttpRequest`
  whose body is read lazily from `body_channel`.
- `AsgiHandler` runs the request through Django's middleware and views and
  encodes the response as one or more reply messages.
- `ViewConsumer` is the `http.request` consumer: it sends those messages to
  the reply channel, retrying a full channel for a bounded time only.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

from django import http
from django.conf import settings
from django.core import signals
from django.core.handlers import base
from django.http import FileResponse, HttpResponse, HttpResponseServerError
from django.urls import set_script_prefix

from .exceptions import RequestAborted, RequestTimeout, ResponseLater
from .layers.backoff import Backoff, retry
from .layers.errors import ChannelFull
from .reply_hold import reply_hold
from .request import AsgiRequest, BodyStream, script_name_of

__all__ = ["AsgiHandler", "AsgiRequest", "BodyStream", "ViewConsumer", "shared_handler"]

logger = logging.getLogger("django.request")
bridge_logger = logging.getLogger("channels_core.handler")


class _NoReply(HttpResponse):
    """Stands for "send nothing": ResponseLater, or a client that went away mid-body."""


def _request_timeout_response() -> HttpResponse:
    return HttpResponse("408 Request Timeout (upload too slow)", status=408, content_type="text/plain")


_SPECIAL = (ResponseLater, RequestAborted, RequestTimeout)


def _note_special_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
    """`got_request_exception`: remember ResponseLater raised where only Django's 500 handling sees it."""
    exc = sys.exc_info()[1]
    if request is not None and isinstance(exc, ResponseLater):
        request._response_later = True


signals.got_request_exception.connect(_note_special_exception, dispatch_uid="channels_core.handler.special")


class AsgiHandler(base.BaseHandler):
    """Runs `http.request` messages through Django; `handler(message)` yields the reply messages."""

    request_class = AsgiRequest

    # Responses are split into messages of at most this many content bytes.
    chunk_size = 512 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.load_middleware()

    def __call__(self, message: Any) -> Iterator[dict]:
        content = getattr(message, "content", message)
        set_script_prefix(script_name_of(content))
        signals.request_started.send(sender=self.__class__, message=message)
        try:
            request = self.request_class(message)
        except UnicodeDecodeError:
            logger.warning("Bad Request (UnicodeDecodeError)", exc_info=True, extra={"status_code": 400})
            response = http.HttpResponseBadRequest()
            response._handler_class = self.__class__
        else:
            response = self.get_response_safely(request)
            response._handler_class = self.__class__
            if isinstance(response, _NoReply) or getattr(request, "_response_later", False):
                response.close()
                return
            error = request._body_error
            if error is not None:
                # The body failed to arrive but the error was handled on the way (e.g. a middleware
                # turned it into a 500): the answer is about the body, not about that.
                if isinstance(error, RequestAborted):
                    response.close()
                    return
                if response.status_code != 408:
                    response.close()
                    response = _request_timeout_response()
                    response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        try:
            yield from self.encode_response(response)
        finally:
            response.close()

    def get_response_safely(self, request: AsgiRequest) -> HttpResponse:
        """`get_response` that never raises: a failure there (DEBUG_PROPAGATE_EXCEPTIONS, a broken 500 view)
        becomes a plain-text 500."""
        try:
            return self.get_response(request)
        except Exception:
            logger.exception("Internal Server Error: %s", request.path, extra={"status_code": 500, "request": request})
            return HttpResponseServerError(
                _format_exc() if settings.DEBUG else "Internal Server Error", content_type="text/plain"
            )

    def _get_response(self, request: Any) -> HttpResponse:
        """Django's innermost step (view middleware, view, rendering), with the bridge's own exceptions mapped."""
        try:
            return super()._get_response(request)
        except (ResponseLater, RequestAborted):
            return _NoReply()
        except RequestTimeout:
            return _request_timeout_response()

    def process_exception_by_middleware(self, exception: Exception, request: Any) -> HttpResponse | None:
        """ResponseLater and body errors skip `process_exception` middleware (they are not view errors)."""
        if isinstance(exception, _SPECIAL):
            raise exception
        return super().process_exception_by_middleware(exception, request)

    @classmethod
    def encode_response(cls, response: HttpResponse) -> Iterator[dict]:
        """The `http.response` message(s) for a Django response.

        Header case is kept; every cookie is its own `Set-Cookie` header. A
        normal response is split at `chunk_size`; a streaming one gives a
        message per part (split at `chunk_size` too), then a final empty
        message with `more_content` False.
        """
        # (name, value) tuples, as Channels 1.x sent (after a trip through a layer they are lists).
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.items()]
        for cookie in response.cookies.values():
            headers.append((b"Set-Cookie", cookie.OutputString().encode("latin-1")))
        message: dict[str, Any] = {"status": response.status_code, "headers": headers}
        if response.streaming:
            # Iterate the response itself, not streaming_content, in case a subclass overrides __iter__.
            for part in response:
                if not part and "status" not in message:
                    continue
                for chunk, _ in cls.chunk_bytes(part):
                    message["content"] = chunk
                    message["more_content"] = True
                    yield message
                    message = {}
            message["more_content"] = False
            yield message
        else:
            for chunk, last in cls.chunk_bytes(response.content):
                message["content"] = chunk
                message["more_content"] = not last
                yield message
                message = {}

    @classmethod
    def chunk_bytes(cls, data: bytes) -> Iterator[tuple[bytes, bool]]:
        """`(chunk, is_last)` pairs of at most `chunk_size` bytes; empty data is one empty chunk."""
        size = cls.chunk_size
        length = len(data)
        if length <= size:
            yield data, True
            return
        for position in range(0, length, size):
            yield data[position : position + size], position + size >= length


def _format_exc() -> str:
    import traceback

    return traceback.format_exc()


_handlers: dict[type, AsgiHandler] = {}
_handlers_lock = threading.Lock()


def shared_handler(handler_class: type[AsgiHandler]) -> AsgiHandler:
    """One handler per class and process (middleware is loaded once; worker threads share it)."""
    handler = _handlers.get(handler_class)
    if handler is None:
        with _handlers_lock:
            handler = _handlers.get(handler_class)
            if handler is None:
                handler = _handlers[handler_class] = handler_class()
    return handler


class ViewConsumer:
    """The `http.request` consumer: Django views, replies sent as they are produced.

    A full reply channel is retried with backoff for up to `send_timeout`
    seconds per message; then the response is abandoned with an error in the
    log. (Channels 1.x retried forever, which could wedge a worker.)
    """

    handler_class = AsgiHandler
    send_timeout = 10.0

    def __init__(self) -> None:
        self.handler = shared_handler(self.handler_class)

    def __call__(self, message: Any, **kwargs: Any) -> None:
        reply_channel = message.reply_channel
        if reply_channel is None:
            bridge_logger.error("An http.request message without a reply_channel was dropped")
            return
        replies = self.handler(message)
        try:
            for reply in replies:
                # The response's last message may leave with the worker's next read (one round trip fewer).
                if not reply.get("more_content") and reply_hold.hold(reply_channel.name, reply):
                    continue
                if not self.send(reply_channel, reply):
                    break
        finally:
            replies.close()

    def send(self, reply_channel: Any, reply: dict) -> bool:
        """Send one reply now; False if the channel stayed full for `send_timeout` seconds."""
        sent = retry(
            lambda: reply_channel.send(reply, immediately=True),
            ChannelFull,
            Backoff(0.005, 0.1),
            timeout=self.send_timeout,
        )
        if not sent:
            bridge_logger.error(
                "Abandoned a response: the reply channel %s stayed full for %ss", reply_channel.name, self.send_timeout
            )
        return sent
