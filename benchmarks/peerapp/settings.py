"""Settings of the peer benchmarks' app; `PEERAPP_STACK` picks the channel layer (ours or channels_redis).

The Redis URL and key prefix come from the environment (`PEERAPP_REDIS_URL`, `PEERAPP_PREFIX`) so
each run has keys of its own. Both stacks share everything else: apps, middleware, views.
"""

import os

STACK = os.environ.get("PEERAPP_STACK", "ours")
REDIS_URL = os.environ.get("PEERAPP_REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.get("PEERAPP_PREFIX", "peerapp:")

SECRET_KEY = "benchmark-only-secret-key-not-for-production-0123456789"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
if STACK == "ours":
    INSTALLED_APPS.append("channels_core")
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "peerapp.urls"
DATABASES = {}  # nothing here touches a database
USE_TZ = True
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}

if STACK == "ours":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_core.layers.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": PREFIX},
            "ROUTING": "peerapp.routing.channel_routing",
        }
    }
elif STACK == "channels4":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # Two redis-py 8 defaults that channels_redis 4.3 was not written against, set back here so
            # the peer works: its asyncio pool holds at most 100 connections and fails the command past
            # them (MaxConnectionsError: a 500 on connect once ~200 clients join at once), and its
            # socket_timeout is 5 s, the very time channels_redis's BZPOPMIN blocks for, so an idle
            # consumer's receive times out on a busy machine and its socket is closed with 1011.
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "max_connections": 1000, "socket_timeout": 30}],
                "prefix": PREFIX,
            },
        }
    }
    ASGI_APPLICATION = "peerapp.channels4.application"
else:
    raise ValueError(f"PEERAPP_STACK={STACK!r}: expected 'ours' or 'channels4'")
