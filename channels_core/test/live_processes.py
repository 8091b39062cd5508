"""The processes `ChannelLiveServerTestCase` starts: `python -m channels_core.test.live_processes ROLE ...`.

Each runs the project's settings with its databases pointed at the test
databases and its channel layers built from `TEST_CONFIG`
(`channel_layers.use_test_config()`), then serves as the interface server
(`server ALIAS PORT DATABASES_JSON`) or as a worker (`worker ALIAS
DATABASES_JSON`).
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    role, alias = argv[0], argv[1]
    databases = json.loads(argv[-1])
    from django.conf import settings

    for db_alias, name in databases.items():
        settings.DATABASES[db_alias]["NAME"] = name
    import django

    django.setup()
    from channels_core.asgi import channel_layers

    channel_layers.use_test_config()
    if role == "server":
        from interface_server.cli import main as server_main

        # The layer object itself is handed over: the server must serve the test layer built here.
        return server_main(["-p", argv[2], "-v", "1"], layer=channel_layers[alias].channel_layer)
    if role == "worker":
        from django.core.management import call_command

        call_command("runworker", layer=alias, verbosity=1)
        return 0
    raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
