"""Consumers for the presence test (tests/stack/test_presence_stack.py), routed with
TEST_CHANNEL_ROUTING=tests.stack.presence_consumers.channel_routing.

/presence/?name=N   connect     join "presence-room" with info {"name": N} and events on, accept
                    disconnect  discard (the record goes with the membership)
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels_core.channel import Group
from routing import route

ROOM = "presence-room"


def connect(message):
    query = message.content.get("query_string", b"")
    query = query.decode("ascii") if isinstance(query, bytes) else query
    name = parse_qs(query).get("name", ["?"])[0]
    message.reply_channel.send({"accept": True}, immediately=True)
    Group(ROOM).join(message, user=name, info={"name": name}, events=True)


def disconnect(message):
    Group(ROOM).discard(message.reply_channel)


channel_routing = [
    route("websocket.connect", connect, path=r"^/presence/$"),
    route("websocket.disconnect", disconnect, path=r"^/presence/$"),
]
