"""Our stack's consumers (run by runworker): the echo and the shootout's protocol."""

from channels_core import Group

from .protocol import GROUP, answer


def accept(message, **kwargs):
    message.reply_channel.send({"accept": True})


def echo(message, **kwargs):
    message.reply_channel.send({"text": message.content["text"] or ""})


def shootout_connect(message, **kwargs):
    Group(GROUP).add(message.reply_channel)
    message.reply_channel.send({"accept": True})


def shootout_receive(message, **kwargs):
    broadcast, reply = answer(message.content["text"])
    if broadcast is not None:
        Group(GROUP).send({"text": broadcast})
    message.reply_channel.send({"text": reply})


def shootout_disconnect(message, **kwargs):
    Group(GROUP).discard(message.reply_channel)
