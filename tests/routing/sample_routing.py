"""Routing tables and consumers imported by dotted path in the routing and check tests."""

from routing import include, route


def connect(message, **kwargs):
    pass


def receive(message, **kwargs):
    pass


def chat(message, **kwargs):
    pass


not_callable = 42

inner_routes = [
    route("websocket.receive", chat, path=r"^/room/(?P<room>\w+)/$"),
]

channel_routing = [
    route("websocket.connect", "tests.routing.sample_routing.connect", path=r"^/ws/"),
    include("tests.routing.sample_routing.inner_routes", path=r"^/chat"),
]

legacy_routing = {
    "websocket.connect": connect,
    "websocket.receive": "tests.routing.sample_routing.receive",
}

# Lazily resolved (a dict is only turned into routes when a Router reads it), so importing
# this module works and only a Router (or the system check) meets the broken entries.
unimportable_consumer_routing = {"websocket.connect": "tests.routing.no_such_module.consumer"}
missing_attribute_routing = {"websocket.connect": "tests.routing.sample_routing.no_such_consumer"}
not_a_routing = 3
