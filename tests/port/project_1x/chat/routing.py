from channels.routing import route

from .consumers import chat_join, chat_leave, chat_send, ws_connect, ws_disconnect, ws_receive

websocket_routing = [
    route("websocket.connect", ws_connect),
    route("websocket.receive", ws_receive),
    route("websocket.disconnect", ws_disconnect),
]

# The custom channel "chat.receive", routed by the frame's command.
custom_routing = [
    route("chat.receive", chat_join, command="^join$"),
    route("chat.receive", chat_leave, command="^leave$"),
    route("chat.receive", chat_send, command="^send$"),
]
