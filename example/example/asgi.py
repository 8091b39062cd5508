"""`interface-server example.asgi:channel_layer` serves the example (with runworker processes)."""

import os

from channels_core.asgi import get_channel_layer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
channel_layer = get_channel_layer()
