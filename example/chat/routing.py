"""The app's WebSocket routes, included by the project's routing (example/routing.py)."""

from channels_core import route

from . import consumers

ROOM = r"^/ws/chat/(?P<room>[-\w]+)/$"

channel_routing = [
    route("websocket.connect", consumers.chat_connect, path=ROOM),
    route("websocket.receive", consumers.chat_receive, path=ROOM),
    route("websocket.disconnect", consumers.chat_disconnect, path=ROOM),
    route("websocket.connect", consumers.rooms_connect, path=r"^/ws/rooms/$"),
    route("websocket.disconnect", consumers.rooms_disconnect, path=r"^/ws/rooms/$"),
    route("websocket.connect", consumers.liveblog_connect, path=r"^/ws/liveblog/$"),
    route("websocket.disconnect", consumers.liveblog_disconnect, path=r"^/ws/liveblog/$"),
]
