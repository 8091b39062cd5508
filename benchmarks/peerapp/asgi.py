"""`interface-server peerapp.asgi:channel_layer` serves the app on our stack (consumers run in runworker)."""

import os

from channels_core.asgi import get_channel_layer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerapp.settings")
channel_layer = get_channel_layer()
