"""The liveblog example (channels-examples, 1.x), ported by changing imports only."""

import json

from channels_core import Group
from routing import route

from .models import LiveBlog


def connect_blog(message, slug):
    try:
        liveblog = LiveBlog.objects.get(slug=slug)
    except LiveBlog.DoesNotExist:
        message.reply_channel.send({"text": json.dumps({"error": "bad_slug"}), "close": True})
        return
    message.reply_channel.send({"accept": True})
    Group(liveblog.group_name).add(message.reply_channel)


def disconnect_blog(message, slug):
    try:
        liveblog = LiveBlog.objects.get(slug=slug)
    except LiveBlog.DoesNotExist:
        return
    Group(liveblog.group_name).discard(message.reply_channel)


routes = [
    route("websocket.connect", connect_blog, path=r"^/(?P<slug>[^/]+)/stream/$"),
    route("websocket.disconnect", disconnect_blog, path=r"^/(?P<slug>[^/]+)/stream/$"),
]
