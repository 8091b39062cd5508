"""The test project's channel routing: WebSocket consumers plus whatever tests add."""

from routing import include, route

from .app import consumers

channel_routing = [
    route("websocket.connect", consumers.ws_connect, path=r"^/ws/"),
    route("websocket.receive", consumers.ws_echo, path=r"^/ws/echo/$"),
    route("websocket.receive", consumers.bridge_echo, path=r"^/ws/bridge/$"),
    route("websocket.connect", consumers.notes_connect, path=r"^/notes/$"),
    route("websocket.disconnect", consumers.notes_disconnect, path=r"^/notes/$"),
    include("tests.project.app.consumers.special_routes", path=r"^/special"),
    include("tests.project.app.session_consumers.routes", path=r"^/sess"),
    include("tests.project.app.ordered_consumers.routes", path=r"^/ordered"),
    include("tests.project.app.history_consumers.routes", path=r"^/history"),
    include("tests.project.app.bindings.routes", path=r"^/binding"),
    include("tests.project.app.liveblog.routes", path=r"^/liveblog"),
    include("tests.project.app.multichat.websocket_routing", path=r"^/chat/stream"),
    include("tests.project.app.multichat.custom_routing"),
]
channel_routing.append(include("tests.project.app.worker_consumers.routes", path=r"^/worker"))
