"""`manage.py ipc_cleanup`: list or remove the shared objects of an IPC channel layer in /dev/shm.

By default removes what dead processes left (half-sent messages, bells and
their registrations), which is always safe; `--all` removes everything of
the prefix, as the layer's `flush` does (queued messages and groups too).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import BaseCommand, CommandError

from channels_core import DEFAULT_CHANNEL_LAYER
from channels_core.layers.ipc.cleanup import flush_prefix, shared_objects, sweep_dead


class Command(BaseCommand):
    help = (
        "Removes what dead processes of an IPC channel layer left in /dev/shm; with --all, every queue, group "
        "and semaphore of its prefix (the layer's flush). --list only lists them."
    )
    leave_locale_alone = True
    requires_system_checks: list = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--layer", default=DEFAULT_CHANNEL_LAYER, help="channel layer alias (default: default)")
        parser.add_argument("--prefix", help="the layer's prefix (default: the alias's CONFIG prefix, or 'asgi')")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--all", action="store_true", help="remove everything of the prefix, messages included")
        group.add_argument("--list", action="store_true", help="only list the shared objects of the prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        prefix = options["prefix"] or self._configured_prefix(options["layer"])
        try:
            if options["list"]:
                found = shared_objects(prefix)
                verb = "found"
            elif options["all"]:
                found = flush_prefix(prefix)
                verb = "removed"
            else:
                found = sweep_dead(prefix)
                verb = "removed (left by dead processes)"
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        for path in found:
            self.stdout.write(path)
        self.stdout.write(f"{len(found)} {verb} for prefix {prefix!r}")

    @staticmethod
    def _configured_prefix(alias: str) -> str:
        config = getattr(settings, "CHANNEL_LAYERS", {}).get(alias, {})
        if not str(config.get("BACKEND", "")).endswith("IPCChannelLayer"):
            return "asgi"
        return config.get("CONFIG", {}).get("prefix", "asgi")
