from channels import include, route
from channels.routing import route_class
from values.consumers import Demultiplexer

from mysite import consumers

channel_routing = [
    route("websocket.connect", consumers.ws_connect, path=r"^/echo/$"),
    route("websocket.receive", consumers.ws_message, path=r"^/echo/$"),
    route("websocket.disconnect", consumers.ws_disconnect, path=r"^/echo/$"),
    include("liveblog.routing.channel_routing", path=r"^/liveblog"),
    include("chat.routing.websocket_routing", path=r"^/chat/stream"),
    include("chat.routing.custom_routing"),
    route_class(Demultiplexer, path=r"^/binding/?$"),
]
