"""Chat rooms and the live blog: function consumers, as a Channels 1.x app writes them."""

import json

from channels_core import Group
from channels_core.sessions import channel_session

from .models import Message, Room


@channel_session
def chat_connect(message, room):
    room, _ = Room.objects.get_or_create(slug=room)
    message.reply_channel.send({"accept": True})
    Group(room.group_name).add(message.reply_channel)


@channel_session
def chat_receive(message, room):
    try:
        data = json.loads(message["text"])
        author, text = str(data["author"])[:50].strip(), str(data["text"])[:2000].strip()
    except (ValueError, KeyError, TypeError):
        message.reply_channel.send({"text": json.dumps({"error": "send {author, text} as JSON"})})
        return
    if not author or not text:
        return
    room = Room.objects.get(slug=room)
    stored = Message.objects.create(room=room, author=author, text=text)
    Group(room.group_name).send({"text": json.dumps(stored.as_dict())})


def chat_disconnect(message, room):
    Group(f"chat-{room}").discard(message.reply_channel)


def liveblog_connect(message):
    message.reply_channel.send({"accept": True})
    Group("liveblog").add(message.reply_channel)


def liveblog_disconnect(message):
    Group("liveblog").discard(message.reply_channel)
