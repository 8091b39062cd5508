"""Chat rooms, the room list's live counts and the live blog: function consumers, as a Channels 1.x app writes them.

A room's members are its group's members in the channel layer (`Group.channel_layer_members()`): each
socket joins on connect and leaves on disconnect; a socket whose interface server died without saying so
stays counted until the layer drops it (evicted once a message to it expires unread, and every
membership ends `group_expiry` after it was added). Whenever a room's membership changes, the new
count goes to the "rooms" group, which every open room list (/) is in.
"""

import json

from channels_core import Group
from channels_core.sessions import channel_session

from .models import Message, Room

ROOM_LIST_GROUP = "rooms"


def member_count(slug: str) -> int:
    """How many sockets are in room `slug` now, as the channel layer counts them."""
    return len(Group(Room.group_name_for(slug)).channel_layer_members())


def announce_count(slug: str) -> None:
    # Sent at once, not when the consumer ends: a later join's count must not overtake this one.
    Group(ROOM_LIST_GROUP).send({"text": json.dumps({"room": slug, "members": member_count(slug)})}, immediately=True)


@channel_session
def chat_connect(message, room):
    room, _ = Room.objects.get_or_create(slug=room)
    message.reply_channel.send({"accept": True})
    Group(room.group_name).add(message.reply_channel)
    announce_count(room.slug)


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
    Group(Room.group_name_for(room)).discard(message.reply_channel)
    announce_count(room)


def rooms_connect(message):
    """The room list's socket: every room's count now (a page that reconnects missed changes), then changes."""
    message.reply_channel.send({"accept": True})
    Group(ROOM_LIST_GROUP).add(message.reply_channel)
    counts = {room.slug: member_count(room.slug) for room in Room.objects.order_by("slug")[:200]}
    message.reply_channel.send({"text": json.dumps({"rooms": counts})})


def rooms_disconnect(message):
    Group(ROOM_LIST_GROUP).discard(message.reply_channel)


def liveblog_connect(message):
    message.reply_channel.send({"accept": True})
    Group("liveblog").add(message.reply_channel)


def liveblog_disconnect(message):
    Group("liveblog").discard(message.reply_channel)
