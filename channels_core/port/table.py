"""The one table of what Channels 1.x names became here.

docs/reference/import-table.md's table documents these rows;
`tests/port/test_table.py` checks that the two say the same thing and that
every new home imports. The porting tool (`python -m channels_core.port`)
and the `manage.py check` hints read this module and nothing else.
"""

from __future__ import annotations

# Every module of Channels 1.1.8 and its new home. A dotted path is looked up
# by its longest listed prefix, so `channels.generic.websockets.X` follows
# `channels.generic.websockets`.
MODULES: dict[str, str] = {
    "channels": "channels_core",
    "channels.apps": "channels_core.apps",
    "channels.asgi": "channels_core.asgi",
    "channels.auth": "channels_core.auth",
    "channels.binding": "channels_core.binding",
    "channels.binding.base": "channels_core.binding.base",
    "channels.binding.websockets": "channels_core.binding.websockets",
    "channels.channel": "channels_core.channel",
    "channels.delay": "channels_core.delay",
    "channels.delay.models": "channels_core.delay.models",
    "channels.delay.worker": "channels_core.delay.worker",
    "channels.delay.management.commands.rundelay": "channels_core.delay.management.commands.rundelay",
    "channels.exceptions": "channels_core.exceptions",
    "channels.generic": "channels_core.generic",
    "channels.generic.base": "channels_core.generic.base",
    "channels.generic.websockets": "channels_core.generic.websockets",
    "channels.handler": "channels_core.handler",
    "channels.management.commands": "channels_core.management.commands",
    "channels.management.commands.runserver": "channels_core.management.commands.runserver",
    "channels.management.commands.runworker": "channels_core.management.commands.runworker",
    "channels.management.commands.rundelay": "channels_core.delay.management.commands.rundelay",
    "channels.message": "channels_core.message",
    "channels.routing": "channels_core.routing",
    "channels.security": "channels_core.security",
    "channels.security.websockets": "channels_core.security.websockets",
    "channels.sessions": "channels_core.sessions",
    "channels.signals": "channels_core.signals",
    "channels.staticfiles": "channels_core.staticfiles",
    "channels.test": "channels_core.test",
    "channels.test.base": "channels_core.test",
    "channels.test.http": "channels_core.test",
    "channels.test.websocket": "channels_core.test",
    "channels.test.liveserver": "channels_core.test",
    "channels.tests": "channels_core.test",  # 1.x's deprecated alias of channels.test
    "channels.utils": "channels_core.utils",
    "channels.worker": "worker",
}

# What `import channels` gave: `channels.<name>` for these is rewritten to `channels_core.<name>`
# (any other attribute of a name `channels` is left alone: it is more likely a local variable).
TOP_LEVEL = frozenset(
    {"Channel", "Group", "channel_layers", "DEFAULT_CHANNEL_LAYER", "route", "route_class", "include", "__version__"}
)

# Names that left the module they were imported from in 1.x: (old module, name) -> new module.
NAMES: dict[tuple[str, str], str] = {
    ("channels.management.commands", "rundelay"): "channels_core.delay.management.commands",
}

# 1.x modules with no counterpart, and what to do instead.
GONE: dict[str, str] = {
    "channels.package_checks": (
        "channels.package_checks is gone: the server, layer and worker ship as one package, "
        "so there is no version skew to check; delete the import"
    ),
    "channels.hacks": (
        "channels.hacks is gone: list 'channels_core' before 'django.contrib.staticfiles' in "
        "INSTALLED_APPS instead (check channels_core.W001)"
    ),
    "channels.log": (
        "channels.log is gone: the commands configure their loggers ('worker', 'channels_core') from -v; "
        "configure yours with Django's LOGGING"
    ),
}

# INSTALLED_APPS entries.
APPS: dict[str, str] = {
    "channels": "channels_core",
    "channels.apps.ChannelsConfig": "channels_core.apps.ChannelsConfig",
    "channels.delay": "channels_core.delay",
}

# CHANNEL_LAYERS "BACKEND" strings.
BACKENDS: dict[str, str] = {
    "asgi_redis.RedisChannelLayer": "channels_core.layers.RedisChannelLayer",
    "asgi_redis.core.RedisChannelLayer": "channels_core.layers.RedisChannelLayer",
    "asgi_redis.RedisSentinelChannelLayer": "channels_core.layers.RedisSentinelChannelLayer",
    "asgi_redis.sentinel.RedisSentinelChannelLayer": "channels_core.layers.RedisSentinelChannelLayer",
    "asgiref.inmemory.ChannelLayer": "channels_core.layers.InMemoryChannelLayer",
    "asgi_ipc.IPCChannelLayer": "channels_core.layers.IPCChannelLayer",
    "asgi_ipc.core.IPCChannelLayer": "channels_core.layers.IPCChannelLayer",
    "asgi_rabbitmq.RabbitmqChannelLayer": "channels_core.layers.RabbitMQChannelLayer",
    "asgi_rabbitmq.core.RabbitmqChannelLayer": "channels_core.layers.RabbitMQChannelLayer",
}

# Packages whose layers 1.x projects named; a BACKEND under one of them that is not in BACKENDS has no
# counterpart here (asgi_redis.RedisLocalChannelLayer, for one).
BACKEND_PACKAGES = ("asgi_redis.", "asgi_ipc.", "asgi_rabbitmq.", "asgiref.")

# The WebSocketBridge script, as a static path.
BRIDGE = ("channels/js/websocketbridge.js", "channels_core/js/websocketbridge.js")

# The protocol server: daphne's command and its flags that are spelled differently by interface-server.
SERVER = ("daphne", "interface-server")
SERVER_MODULE = ("daphne", "interface_server")  # python -m daphne
SERVER_FLAGS: dict[str, str] = {
    "--websocket_timeout": "--websocket-timeout",
    "--websocket_connect_timeout": "--websocket-connect-timeout",
}
# Daphne flags that have no counterpart: dropped, with the reason printed.
SERVER_FLAGS_GONE: dict[str, str] = {
    "--force-sync": "interface-server has no polling mode: replies always arrive by a blocking receive",
}


def new_module(old: str) -> str | None:
    """Where the 1.x module `old` (or a dotted path inside one) lives now; None if it is not Channels 1.x's."""
    parts = old.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in MODULES:
            return ".".join([MODULES[prefix], *parts[cut:]])
    return None


def gone(old: str) -> str | None:
    """What to do instead, if the 1.x module `old` (or one inside it) has no counterpart."""
    for module, advice in GONE.items():
        if old == module or old.startswith(module + "."):
            return advice
    return None


def new_home(module: str, name: str) -> str | None:
    """The module to import `name` from, for `from <module> import <name>` in 1.x code."""
    return NAMES.get((module, name)) or new_module(module)
