"""Routing on the Django side: the Channels 1.x `channels.routing` module.

The routing engine is the top-level `routing` package (it imports nothing
of ours, nor Django); this module re-exports its names under their 1.x
home and adds what only the Django side knows: the fallback routes that
`Router.check_default()` appends (Django views for `http.request`,
accept-all `websocket.connect`, no-op consumers for the rest), and
`router_for()`, which builds routers that know them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from routing import Include, Route, RouteClass, Router, include, route, route_class

__all__ = [
    "Include",
    "Route",
    "RouteClass",
    "Router",
    "accept_connection",
    "default_routes",
    "include",
    "null_consumer",
    "route",
    "route_class",
    "router_for",
]


def accept_connection(message: Any, **kwargs: Any) -> None:
    """The default `websocket.connect` consumer: the spec requires connects be answered; accept them."""
    message.reply_channel.send({"accept": True})


def null_consumer(message: Any, **kwargs: Any) -> None:
    """Consume and ignore (default for `websocket.receive` / `websocket.disconnect` / `http.disconnect`)."""


def default_routes(http_consumer: Callable | None = None) -> list[Route]:
    """The fallback routes every worker adds after the project's own (Channels 1.x `check_default`)."""
    if http_consumer is None:
        # Here, not at the top: Django's request handling is only needed once a worker starts.
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


def router_for(routing: Any) -> Router:
    """A `Router` over `routing` whose `check_default()` appends `default_routes`."""
    return Router(routing, default_routes=default_routes)
