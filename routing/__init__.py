"""Routing tables that map channels and message filters to consumers (Channels 1.x API).

    channel_routing = [
        route("websocket.connect", ws_connect, path=r"^/chat/(?P<room>[^/]+)/$"),
        route_class(ChatConsumer, path=r"^/live/"),
        include("myapp.routing.api_routes", path=r"^/api"),
    ]

Filters are regexes matched (`re.match`) against the message key of the
same name; named groups become consumer keyword arguments; `include`
strips what its own filters matched before the inner routes try. The first
match wins. Imports nothing else of this project.
"""

from .router import Include, Route, RouteClass, Router, include, route, route_class

__all__ = ["Include", "Route", "RouteClass", "Router", "include", "route", "route_class"]
