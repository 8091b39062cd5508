"""Consumers that must see each socket's frames in order, however many workers run them."""

import random
import time

from channels_core.generic import WebsocketConsumer
from channels_core.sessions import enforce_ordering
from routing import route


@enforce_ordering
def connect(message):
    message.reply_channel.send({"accept": True})


@enforce_ordering
def receive(message):
    # A random pause makes workers finish out of order, so only the ordering keeps the frames in line.
    time.sleep(random.random() * 0.002)
    message.reply_channel.send({"text": message["text"]})


@enforce_ordering
def disconnect(message):
    pass


class Strict(WebsocketConsumer):
    strict_ordering = True

    def receive(self, text=None, bytes=None, **kwargs):
        time.sleep(random.random() * 0.002)
        self.send(text=text)


routes = [
    route("websocket.connect", connect, path=r"^/fn/$"),
    route("websocket.receive", receive, path=r"^/fn/$"),
    route("websocket.disconnect", disconnect, path=r"^/fn/$"),
    Strict.as_route(path=r"^/class/$"),
]
