"""The channel layer the interface server uses: `interface-server mysite.asgi:channel_layer`."""

import os

from channels_core.asgi import get_channel_layer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
channel_layer = get_channel_layer()
