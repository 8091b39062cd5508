"""Exceptions consumers raise to steer the worker, as in Channels 1.x."""

from __future__ import annotations

from typing import Any


class ConsumeLater(Exception):
    """Put the message back at the end of its channel and try again later (bounded retries)."""


class ResponseLater(Exception):
    """Raised in a view to say it will respond later (e.g. from another consumer)."""


class RequestTimeout(Exception):
    """The request body did not arrive in time (answered with 408)."""


class RequestAborted(Exception):
    """The client went away while sending the request body (no response is sent)."""


class DenyConnection(Exception):
    """Raised in a `websocket.connect` consumer to reject the socket (HTTP 403)."""


class ChannelSocketException(Exception):
    """Base for exceptions that act on the message's socket when they escape a consumer."""

    def run(self, message: Any) -> None:
        raise NotImplementedError("ChannelSocketException subclasses implement run(message)")


class WebsocketCloseException(ChannelSocketException):
    """Close the WebSocket, with `code` (1000 or 3000-4999) or the default 1000."""

    def __init__(self, code: int | None = None) -> None:
        if code is not None and (
            not isinstance(code, int) or isinstance(code, bool) or not (code == 1000 or 3000 <= code <= 4999)
        ):
            raise ValueError(f"invalid close code {code!r}: use 1000 or 3000-4999")
        self._code = code
        super().__init__(code)

    def run(self, message: Any) -> None:
        if message.reply_channel is None:
            raise ValueError("WebsocketCloseException used on a message without a reply channel")
        message.reply_channel.send({"close": self._code or True})


class SendNotAvailableOnDemultiplexer(Exception):
    """Sending through a demultiplexer directly is not possible; use the multiplexer."""
