"""`interface-server tests.project.asgi:channel_layer` serves this project."""

import os

from channels_core.asgi import get_channel_layer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
channel_layer = get_channel_layer()
