"""The same app on Channels 4 (run by daphne 4 from the peer venv): the echo and the shootout's protocol.

The consumers are Channels 4's async ones, its fastest way to serve them (no thread hop per message).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerapp.settings")
os.environ.setdefault("PEERAPP_STACK", "channels4")

from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()  # sets Django up before the consumers are imported

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from .protocol import GROUP, answer  # noqa: E402


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data or "")


class Shootout(AsyncWebsocketConsumer):
    async def connect(self):
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        broadcast, reply = answer(text_data)
        if broadcast is not None:
            await self.channel_layer.group_send(GROUP, {"type": "shootout.broadcast", "text": broadcast})
        await self.send(text_data=reply)

    async def shootout_broadcast(self, event):
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter(
    {
        "http": django_app,
        "websocket": URLRouter([path("ws/echo/", Echo.as_asgi()), path("shootout/", Shootout.as_asgi())]),
    }
)
