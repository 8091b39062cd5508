from chat import consumers

from channels_core import route

channel_routing = [
    route("websocket.connect", consumers.ws_connect, path=r"^/ws/chat/(?P<room_name>[-\w]+)/$"),
    route("websocket.receive", consumers.ws_receive, path=r"^/ws/chat/[-\w]+/$"),
    route("websocket.disconnect", consumers.ws_disconnect, path=r"^/ws/chat/[-\w]+/$"),
]
