"""`apply_routes`: run a test (or a block) with other routing on some layer aliases."""

from __future__ import annotations

import functools
import inspect
from typing import Any

from routing import include

from .. import DEFAULT_CHANNEL_LAYER
from ..asgi import channel_layers
from ..routing import router_for


class apply_routes:  # noqa: N801  (the Channels 1.x name)
    """Replace the routing of `aliases` while active; a context manager, or a decorator of a function or class.

        with apply_routes([route("websocket.receive", echo)]):
            ...

        @apply_routes([route("websocket.receive", echo)])
        class EchoTests(ChannelTestCase): ...

    `routes` is a routing list (or one route); a list of lists becomes one
    `include` per inner list.
    """

    def __init__(self, routes: Any, aliases: list[str] | None = None) -> None:
        self.routes = routes
        self.aliases = list(aliases or [DEFAULT_CHANNEL_LAYER])
        self._saved: list[dict[str, tuple[Any, Any]]] = []

    def _routing(self) -> list:
        if isinstance(self.routes, (list, tuple)):
            if self.routes and isinstance(self.routes[0], (list, tuple)):
                return [include(inner) for inner in self.routes]
            return list(self.routes)
        return [self.routes]

    def enter(self) -> None:
        saved = {}
        routing = self._routing()
        for alias in self.aliases:
            layer = channel_layers[alias]
            saved[alias] = (layer.routing, layer.router)
            layer.routing = routing
            layer.router = router_for(routing)
        self._saved.append(saved)

    def exit(self, *exc_info: Any) -> None:
        for alias, (routing, router) in self._saved.pop().items():
            layer = channel_layers[alias]
            layer.routing = routing
            layer.router = router

    __enter__ = enter
    __exit__ = exit

    def __call__(self, target: Any) -> Any:
        if inspect.isclass(target):
            # Around each test, after the class's own setUp swapped in fresh layers.
            setup, teardown = target.setUp, target.tearDown

            def setUp(test: Any) -> None:  # noqa: N802
                setup(test)
                self.enter()

            def tearDown(test: Any) -> None:  # noqa: N802
                try:
                    self.exit()
                finally:
                    teardown(test)

            target.setUp, target.tearDown = setUp, tearDown
            return target

        @functools.wraps(target)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return target(*args, **kwargs)

        return wrapper
