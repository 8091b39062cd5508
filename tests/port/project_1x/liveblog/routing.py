from channels.routing import route

from .consumers import connect_blog, disconnect_blog

channel_routing = [
    route("websocket.connect", connect_blog, path=r"^/(?P<slug>[^/]+)/stream/$"),
    route("websocket.disconnect", disconnect_blog, path=r"^/(?P<slug>[^/]+)/stream/$"),
]
