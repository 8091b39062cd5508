"""The example's channel routing: chat rooms, the live blog, the data-binding page, the admin's operations page."""

from chat.bindings import ValuesDemultiplexer

from channels_core import include

channel_routing = [
    include("channels_core.ops.routing.channel_routing"),  # the admin's operations page (staff only)
    include("chat.routing.channel_routing"),  # chat rooms, the room list's live counts, the live blog
    ValuesDemultiplexer.as_route(path=r"^/ws/values/$"),
]
