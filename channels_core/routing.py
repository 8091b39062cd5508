"""`channels_core.routing`: the Channels 1.x `channels.routing` names; they live in the top-level `routing` package."""

from routing import Include, Route, RouteClass, Router, include, route, route_class

__all__ = ["Include", "Route", "RouteClass", "Router", "include", "route", "route_class"]
