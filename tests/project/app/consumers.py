"""Consumers of the test project."""

from channels_core import Group
from channels_core.exceptions import ConsumeLater
from routing import route


def ws_connect(message, **kwargs):
    message.reply_channel.send({"accept": True})


def ws_echo(message, **kwargs):
    message.reply_channel.send({"text": message.content["text"] or ""})


def notes_connect(message, **kwargs):
    Group("notes").add(message.reply_channel)
    message.reply_channel.send({"accept": True})


def notes_disconnect(message, **kwargs):
    Group("notes").discard(message.reply_channel)


def crash(message, **kwargs):
    raise RuntimeError("this consumer always fails")


def later(message, **kwargs):
    """Accept only on the third try (ConsumeLater twice)."""
    if message.content.get("__retries__", 0) < 2:
        raise ConsumeLater()
    message.reply_channel.send({"text": f"after {message.content['__retries__']} retries", "accept": True})


def room(message, name):
    message.reply_channel.send({"accept": True, "text": f"room {name}"})


special_routes = [
    route("websocket.connect", crash, path=r"^/crash/$"),
    route("websocket.connect", later, path=r"^/later/$"),
    route("websocket.connect", room, path=r"^/room/(?P<name>\w+)/$"),
]


def bridge_echo(message):
    """/ws/bridge/: echo each JSON frame back unchanged (a {stream, payload} frame stays one)."""
    message.reply_channel.send({"text": message["text"]})
