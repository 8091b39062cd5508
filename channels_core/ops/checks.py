"""`channels_ops.W001`: the page is installed but its WebSocket is not routed to its consumer.

Without the route, the default routes accept the socket and ignore what the
page sends: the page would wait for figures that never come.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.core import checks

from .. import DEFAULT_CHANNEL_LAYER


def routed_consumer(routing: Any, channel: str, path: str) -> Any:
    """The consumer `routing` picks for a message on `channel` with `path` (None if no route matches)."""
    from routing import Router

    message = SimpleNamespace(channel=SimpleNamespace(name=channel), content={"path": path})
    match = Router(routing).match(message)
    return match[0] if match else None


def route_problems(routing: Any, path: str) -> list[str]:
    """What is wrong with how `routing` routes the page's socket at `path` (empty when both channels reach it)."""
    from .consumers import OpsStatusConsumer

    problems = []
    for channel in ("websocket.connect", "websocket.receive"):
        consumer = routed_consumer(routing, channel, path)
        if consumer is not OpsStatusConsumer:
            name = getattr(consumer, "__qualname__", repr(consumer)) if consumer is not None else "no route"
            problems.append(f"{channel} goes to {name}")
    return problems


@checks.register("channels")
def check_ops_route(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W001: the page is installed, but the default layer's routing does not send its socket to it."""
    from django.apps import apps

    from .conf import websocket_path

    if not apps.is_installed("channels_core.ops"):
        return []
    config = (getattr(settings, "CHANNEL_LAYERS", None) or {}).get(DEFAULT_CHANNEL_LAYER)
    if not isinstance(config, dict) or "ROUTING" not in config:
        return []  # channels_core's own checks report a missing layer or routing
    path = websocket_path()
    try:
        problems = route_problems(config["ROUTING"], path)
    except Exception:
        return []  # an unloadable routing is channels_core.E003
    if not problems:
        return []
    return [
        checks.Warning(
            f"channels_core.ops is installed, but its WebSocket ({path}) is not routed to the operations page "
            f"({'; '.join(problems)}): the page would wait for figures that never come",
            hint='Add include("channels_core.ops.routing.channel_routing") to your channel routing, '
            "before any route that would match its path.",
            id="channels_ops.W001",
        )
    ]
