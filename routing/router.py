"""`Route`, `RouteClass`, `Include` and the `Router` that tries them in order."""

from __future__ import annotations

import copy
import importlib
import re
from collections.abc import Callable, Iterable
from typing import Any

from .names import name_that_thing

Match = tuple[Callable, dict[str, Any]]


class RoutingError(ValueError):
    """A routing table is malformed (bad filter, unimportable consumer, wrong type)."""


def import_dotted(path: str, what: str) -> Any:
    """Import `package.module.attribute` with an error that names `what` failed."""
    module_name, _, attribute = path.rpartition(".")
    if not module_name:
        raise RoutingError(f"{what} {path!r} is not a dotted path (package.module.name)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RoutingError(f"{what} {path!r} cannot be imported: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise RoutingError(f"{what} {path!r}: module {module_name!r} has no {attribute!r}") from None


def _compile_filters(filters: dict[str, Any]) -> dict[str, re.Pattern]:
    compiled = {}
    for name, pattern in filters.items():
        if isinstance(pattern, bytes):
            pattern = pattern.decode("ascii")
        if not isinstance(pattern, (str, re.Pattern)):
            raise RoutingError(f"filter {name}={pattern!r} must be a regex string, not {type(pattern).__name__}")
        try:
            regex = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)
        except re.error as exc:
            raise RoutingError(f"filter {name}={pattern!r} is not a valid regex: {exc}") from None
        if regex.groups > len(regex.groupindex):
            raise RoutingError(f"filter {name}={regex.pattern!r} has positional groups; name them (?P<name>...)")
        compiled[name] = regex
    return compiled


def _value(content: dict, name: str) -> str | None:
    value = content.get(name)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _match_filters(filters: dict[str, re.Pattern], content: dict) -> tuple[dict[str, Any], dict[str, str]] | None:
    """(named groups, each filtered key with its matched prefix removed), or None if a filter fails."""
    kwargs: dict[str, Any] = {}
    stripped: dict[str, str] = {}
    for name, regex in filters.items():
        value = _value(content, name)
        if value is None:
            return None
        found = regex.match(value)
        if found is None:
            return None
        kwargs.update(found.groupdict())
        stripped[name] = value[found.end() :]
    return kwargs, stripped


class Route:
    """`route(channels, consumer, **filters)`: one or more channels to a consumer, if every filter matches."""

    def __init__(self, channels: str | Iterable[str], consumer: Callable | str, **filters: Any) -> None:
        self.channels = {channels} if isinstance(channels, str) else set(channels)
        if isinstance(consumer, str):
            consumer = import_dotted(consumer, "consumer")
        if not callable(consumer):
            raise RoutingError(f"consumer {consumer!r} for {sorted(self.channels)} is not callable")
        self.consumer = consumer
        self.filters = _compile_filters(filters)

    def match(self, message: Any) -> Match | None:
        if message.channel.name not in self.channels:
            return None
        matched = _match_filters(self.filters, message.content)
        return None if matched is None else (self.consumer, matched[0])

    def channel_names(self) -> set[str]:
        return set(self.channels)

    def __repr__(self) -> str:
        filters = " ".join(f"{k}={v.pattern!r}" for k, v in self.filters.items())
        return f"<Route {sorted(self.channels)} -> {name_that_thing(self.consumer)} {filters}>"


class RouteClass(Route):
    """`route_class(consumer_class, **filters)`: channels come from `consumer_class.channel_names()`."""

    def __init__(self, consumer: Any, **filters: Any) -> None:
        if isinstance(consumer, str):
            consumer = import_dotted(consumer, "consumer class")
        names = getattr(consumer, "channel_names", None)
        if names is None:
            raise RoutingError(f"{consumer!r} has no channel_names(); use route() for plain functions")
        super().__init__(names(), consumer, **filters)


class Include:
    """`include(routing, **filters)`: a nested table, tried with the matched prefix stripped."""

    def __init__(self, routing: Any, **filters: Any) -> None:
        self.routing = resolve_routing(routing)
        self.filters = _compile_filters(filters)

    def match(self, message: Any) -> Match | None:
        kwargs: dict[str, Any] = {}
        if self.filters:
            matched = _match_filters(self.filters, message.content)
            if matched is None:
                return None
            kwargs, stripped = matched
            message = copy.copy(message)
            message.content = {**message.content, **stripped}
        for entry in self.routing:
            result = entry.match(message)
            if result is not None:
                consumer, inner = result
                return consumer, {**kwargs, **inner}
        return None

    def channel_names(self) -> set[str]:
        names: set[str] = set()
        for entry in self.routing:
            names |= entry.channel_names()
        return names


def resolve_routing(routing: Any) -> list:
    """A routing table as a list of entries: from a list, a dotted path, or a legacy `{channel: consumer}` dict."""
    if isinstance(routing, str):
        routing = import_dotted(routing, "routing")
    if isinstance(routing, dict):
        return [Route(channel, consumer) for channel, consumer in routing.items()]
    if isinstance(routing, (list, tuple)):
        for entry in routing:
            if not (callable(getattr(entry, "match", None)) and callable(getattr(entry, "channel_names", None))):
                raise RoutingError(f"routing entry {entry!r} is not a route(), route_class() or include()")
        return list(routing)
    raise RoutingError(f"routing must be a list of routes, a dict or a dotted path, not {type(routing).__name__}")


class Router:
    """The root of a routing table: which consumer handles a message, and which channels to listen on.

    `default_routes(http_consumer)` builds the fallback routes that
    `check_default()` appends; whoever builds the router passes it (the
    Django side's are `channels_core.routing.default_routes`, and
    `channels_core.routing.router_for` builds routers with them).
    """

    def __init__(self, routing: Any, default_routes: Callable[[Callable | None], list] | None = None) -> None:
        self.root = Include(routing)
        self.channels = self.root.channel_names()
        self.default_routes = default_routes

    def add_route(self, route: Any) -> None:
        self.root.routing.append(route)
        self.channels = self.root.channel_names()

    def match(self, message: Any) -> Match | None:
        """`(consumer, kwargs)` for the first matching route, or None."""
        return self.root.match(message)

    def check_default(self, http_consumer: Callable | None = None) -> None:
        """Append the fallback routes (Django views for `http.request`, accept-all `websocket.connect`, ...)."""
        if self.default_routes is None:
            raise RuntimeError(
                "this Router was built without default_routes; build it with "
                "channels_core.routing.router_for(routing), or Router(routing, default_routes=...)"
            )
        for entry in self.default_routes(http_consumer):
            self.add_route(entry)


route = Route
route_class = RouteClass
include = Include
