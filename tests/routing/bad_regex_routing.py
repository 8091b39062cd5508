"""A routing module whose table has an invalid regex: importing it fails with RoutingError."""

from routing import route


def consumer(message, **kwargs):
    pass


channel_routing = [route("websocket.connect", consumer, path=r"^/(unclosed")]
