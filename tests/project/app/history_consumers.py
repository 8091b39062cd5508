"""A room whose group keeps history: the connect consumer resumes where the client was (`@resume_groups`).

`/history/<room>/`: joins `hist-<room>` (the test settings give `hist-*` a
history), resuming from the client's `?since=`; a frame `{"say": X}` is sent
to the room. The tests also broadcast from outside, straight on the layer.
"""

import json

from channels_core import Group
from channels_core.history import resume_groups
from routing import route


@resume_groups("hist-{room}")
def connect(message, room):
    message.reply_channel.send({"accept": True})


def receive(message, room):
    data = json.loads(message["text"])
    Group(f"hist-{room}").send({"text": json.dumps({"said": data["say"]})})


def disconnect(message, room):
    Group(f"hist-{room}").discard(message.reply_channel)


routes = [
    route("websocket.connect", connect, path=r"^/(?P<room>[-\w]+)/$"),
    route("websocket.receive", receive, path=r"^/(?P<room>[-\w]+)/$"),
    route("websocket.disconnect", disconnect, path=r"^/(?P<room>[-\w]+)/$"),
]
