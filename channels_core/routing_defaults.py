"""The fallback routes every worker adds after the project's own (Channels 1.x `check_default`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def accept_connection(message: Any, **kwargs: Any) -> None:
    """The default `websocket.connect` consumer: the spec requires connects be answered; accept them."""
    message.reply_channel.send({"accept": True})


def null_consumer(message: Any, **kwargs: Any) -> None:
    """Consume and ignore (default for `websocket.receive` / `websocket.disconnect`)."""


def default_routes(http_consumer: Callable | None = None) -> list:
    from routing import Route

    if http_consumer is None:
        from .handler import ViewConsumer

        http_consumer = ViewConsumer()
    return [
        Route("http.request", http_consumer),
        Route("websocket.connect", accept_connection),
        Route("websocket.receive", null_consumer),
        Route("websocket.disconnect", null_consumer),
        # Consumed even when the project ignores it, so it never fills up (daphne 1.x left it piling).
        Route("http.disconnect", null_consumer),
    ]
