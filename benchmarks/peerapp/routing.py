"""Our stack's routing: /ws/echo/ echoes, /shootout/ speaks the shootout's protocol."""

from routing import route

from . import consumers

channel_routing = [
    route("websocket.connect", consumers.accept, path=r"^/ws/echo/$"),
    route("websocket.receive", consumers.echo, path=r"^/ws/echo/$"),
    route("websocket.connect", consumers.shootout_connect, path=r"^/shootout/$"),
    route("websocket.receive", consumers.shootout_receive, path=r"^/shootout/$"),
    route("websocket.disconnect", consumers.shootout_disconnect, path=r"^/shootout/$"),
]
