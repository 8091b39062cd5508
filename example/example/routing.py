"""The example's channel routing: chat rooms, the live blog, the data-binding page, the admin's operations page."""

from chat import consumers
from chat.bindings import ValuesDemultiplexer

from channels_core import include, route

channel_routing = [
    include("channels_core.ops.routing.channel_routing"),  # the admin's operations page (staff only)
    route("websocket.connect", consumers.chat_connect, path=r"^/ws/chat/(?P<room>[-\w]+)/$"),
    route("websocket.receive", consumers.chat_receive, path=r"^/ws/chat/(?P<room>[-\w]+)/$"),
    route("websocket.disconnect", consumers.chat_disconnect, path=r"^/ws/chat/(?P<room>[-\w]+)/$"),
    route("websocket.connect", consumers.liveblog_connect, path=r"^/ws/liveblog/$"),
    route("websocket.disconnect", consumers.liveblog_disconnect, path=r"^/ws/liveblog/$"),
    ValuesDemultiplexer.as_route(path=r"^/ws/values/$"),
]
