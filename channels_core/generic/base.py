"""`BaseConsumer`: a class-based consumer, instantiated for each message (Channels 1.x API).

    class Counter(BaseConsumer):
        method_mapping = {"counter.add": "add"}
        channel_session = True

        def add(self, message, **kwargs):
            message.channel_session["n"] = message.channel_session.get("n", 0) + 1

    channel_routing = [route_class(Counter)]      # or Counter.as_route()

The router calls the class like a function consumer: `Counter(message,
**kwargs)` builds an instance, which dispatches the message at once to the
method `method_mapping` names for its channel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from routing import route_class

from ..auth import channel_session_user
from ..sessions import channel_session


class BaseConsumer:
    """Maps channels to methods; wraps them in the session/user decorators its flags ask for.

    Class attributes: `method_mapping = {channel name: method name}`,
    `channel_session = False`, `channel_session_user = False` (implies a
    channel session). Instance attributes: `message`, `kwargs`.
    """

    method_mapping: dict[str, str] = {}
    channel_session = False
    channel_session_user = False

    def __init__(self, message: Any, **kwargs: Any) -> None:
        self.message = message
        self.kwargs = kwargs
        self.dispatch(message, **kwargs)

    @classmethod
    def channel_names(cls) -> set[str]:
        """The channels this consumer handles (what `route_class` routes to it)."""
        return set(cls.method_mapping)

    @classmethod
    def as_route(cls, attrs: dict[str, Any] | None = None, **filters: Any) -> Any:
        """A `route_class` for this consumer, or for a subclass with `attrs` overriding class attributes.

        MyConsumer.as_route(path=r"^/chat/$")
        MyConsumer.as_route(attrs={"groups": ["lobby"]}, path=r"^/lobby/$")
        """
        consumer = cls
        if attrs:
            if not isinstance(attrs, dict):
                raise TypeError(f"as_route(attrs=...) must be a dict of class attributes, not {type(attrs).__name__}")
            consumer = type(
                cls.__name__, (cls,), {"__module__": cls.__module__, "__qualname__": cls.__qualname__, **attrs}
            )
        return route_class(consumer, **filters)

    def get_handler(self, message: Any, **kwargs: Any) -> Callable[..., Any]:
        """The bound method for the message's channel, wrapped in the decorators the class flags ask for."""
        name = self.method_mapping.get(message.channel.name)
        if name is None:
            raise ValueError(
                f"{type(self).__qualname__} has no method for channel {message.channel.name!r}; "
                f"its method_mapping covers {sorted(self.method_mapping)}"
            )
        handler = getattr(self, name)
        if self.channel_session_user:
            return channel_session_user(handler)
        if self.channel_session:
            return channel_session(handler)
        return handler

    def dispatch(self, message: Any, **kwargs: Any) -> Any:
        """Run the handler for `message` (called from `__init__`)."""
        return self.get_handler(message, **kwargs)(message, **kwargs)
