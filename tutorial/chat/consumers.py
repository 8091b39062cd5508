"""The chat's consumers: one WebSocket per open room page, one group per room."""

import json

from channels_core import Group
from channels_core.sessions import channel_session

from .models import Message, Room


@channel_session
def ws_connect(message, room_name):
    room, _ = Room.objects.get_or_create(name=room_name)
    message.channel_session["room"] = room.name
    Group(room.group_name).add(message.reply_channel)
    message.reply_channel.send({"accept": True})


@channel_session
def ws_receive(message):
    room = Room.objects.get(name=message.channel_session["room"])
    data = json.loads(message["text"])
    stored = Message.objects.create(room=room, author=str(data["author"])[:50], text=str(data["text"])[:2000])
    Group(room.group_name).send({"text": json.dumps(stored.as_dict())})


@channel_session
def ws_disconnect(message):
    Group(f"chat-{message.channel_session['room']}").discard(message.reply_channel)
