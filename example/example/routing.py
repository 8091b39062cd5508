"""The example's channel routing: chat rooms, the live blog, the data-binding page."""

from chat import consumers
from chat.bindings import ValuesDemultiplexer

from channels_core import route

channel_routing = [
    route("websocket.connect", consumers.chat_connect, path=r"^/ws/chat/(?P<room>[-\w]+)/$"),
    route("websocket.receive", consumers.chat_receive, path=r"^/ws/chat/(?P<room>[-\w]+)/$"),
    route("websocket.disconnect", consumers.chat_disconnect, path=r"^/ws/chat/(?P<room>[-\w]+)/$"),
    route("websocket.connect", consumers.liveblog_connect, path=r"^/ws/liveblog/$"),
    route("websocket.disconnect", consumers.liveblog_disconnect, path=r"^/ws/liveblog/$"),
    ValuesDemultiplexer.as_route(path=r"^/ws/values/$"),
]
