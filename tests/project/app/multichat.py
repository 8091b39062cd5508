"""The multichat example (channels-examples, 1.x), ported by changing imports only.

`websocket.receive` frames are JSON commands re-sent to a custom channel,
`chat.receive`, which routes them to join/leave/send by a `command` filter.
"""

import json
from functools import wraps

from channels_core import Channel
from channels_core.auth import channel_session_user, channel_session_user_from_http
from routing import route

from .models import Room


class ClientError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code

    def send_to(self, channel):
        channel.send({"text": json.dumps({"error": self.code})})


def catch_client_error(func):
    @wraps(func)
    def inner(message, *args, **kwargs):
        try:
            return func(message, *args, **kwargs)
        except ClientError as e:
            e.send_to(message.reply_channel)

    return inner


def get_room_or_error(room_id, user):
    if not user.is_authenticated:
        raise ClientError("USER_HAS_TO_LOGIN")
    try:
        room = Room.objects.get(pk=room_id)
    except Room.DoesNotExist:
        raise ClientError("ROOM_INVALID") from None
    if room.staff_only and not user.is_staff:
        raise ClientError("ROOM_ACCESS_DENIED")
    return room


@channel_session_user_from_http
def ws_connect(message):
    message.reply_channel.send({"accept": True})
    message.channel_session["rooms"] = []


def ws_receive(message):
    payload = json.loads(message["text"])
    payload["reply_channel"] = message.content["reply_channel"]
    Channel("chat.receive").send(payload)


@channel_session_user
def ws_disconnect(message):
    from channels_core import Group

    for room_id in message.channel_session.get("rooms", set()):
        try:
            room = Room.objects.get(pk=room_id)
            Group(room.group_name).discard(message.reply_channel)
        except Room.DoesNotExist:
            pass


@channel_session_user
@catch_client_error
def chat_join(message):
    from channels_core import Group

    room = get_room_or_error(message["room"], message.user)
    Group(room.group_name).add(message.reply_channel)
    message.channel_session["rooms"] = list(set(message.channel_session["rooms"]).union([room.id]))
    message.reply_channel.send({"text": json.dumps({"join": str(room.id), "title": room.title})})


@channel_session_user
@catch_client_error
def chat_leave(message):
    from channels_core import Group

    room = get_room_or_error(message["room"], message.user)
    Group(room.group_name).discard(message.reply_channel)
    message.channel_session["rooms"] = list(set(message.channel_session["rooms"]).difference([room.id]))
    message.reply_channel.send({"text": json.dumps({"leave": str(room.id)})})


@channel_session_user
@catch_client_error
def chat_send(message):
    from channels_core import Group

    if int(message["room"]) not in message.channel_session["rooms"]:
        raise ClientError("ROOM_ACCESS_DENIED")
    room = get_room_or_error(message["room"], message.user)
    Group(room.group_name).send(
        {"text": json.dumps({"room": str(room.id), "message": message["message"], "username": message.user.username})}
    )


websocket_routing = [
    route("websocket.connect", ws_connect),
    route("websocket.receive", ws_receive),
    route("websocket.disconnect", ws_disconnect),
]

custom_routing = [
    route("chat.receive", chat_join, command="^join$"),
    route("chat.receive", chat_leave, command="^leave$"),
    route("chat.receive", chat_send, command="^send$"),
]
