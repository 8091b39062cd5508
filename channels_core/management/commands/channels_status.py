"""`manage.py channels_status`: queues, groups, live processes and drops of a channel layer.

The figures come from `channels_core.status.collect_status`; this module only prints them.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management import BaseCommand, CommandError

from channels_core import DEFAULT_CHANNEL_LAYER
from channels_core.asgi import InvalidChannelLayerError, channel_layers
from channels_core.status import DEFAULT_LIMIT, collect_status, render_text

CLEAR_SCREEN = "\033[H\033[2J"
DEFAULT_WATCH_INTERVAL = 2.0
TABLE_ROWS = 20


class Command(BaseCommand):
    help = (
        "Shows the channel layer as operators need it: queue depth and age of the oldest message per channel, "
        "groups and their sizes, live interface servers and workers (from their leases) and dropped messages."
    )
    leave_locale_alone = True
    requires_system_checks: list = []  # a status look must work even while a check fails

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--layer", default=DEFAULT_CHANNEL_LAYER, help="channel layer alias (default: default)")
        parser.add_argument(
            "--json", action="store_true", help="print one JSON object (with --watch: one per line) for scripts"
        )
        parser.add_argument(
            "--watch",
            type=float,
            nargs="?",
            const=DEFAULT_WATCH_INTERVAL,
            default=None,
            metavar="SECONDS",
            help=f"refresh every SECONDS (default {DEFAULT_WATCH_INTERVAL:g}) until Ctrl-C",
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help=f"queues and groups listed at most, the fullest and largest (default: 20 in the tables, "
            f"{DEFAULT_LIMIT} with --json); the tables still count up to {DEFAULT_LIMIT}",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] is not None and options["limit"] < 0:
            raise CommandError("--limit must not be negative")
        if options["watch"] is not None and options["watch"] <= 0:
            raise CommandError("--watch takes a positive number of seconds")
        try:
            layer = channel_layers[options["layer"]]
        except InvalidChannelLayerError as exc:
            raise CommandError(str(exc)) from None
        if layer.local_only():
            self.stderr.write(
                f"Note: the {layer} layer lives inside one process; this command sees its own empty copy, "
                "not that of your server."
            )
        if options["watch"] is None:
            status = self.show(layer, options)
            if status["errors"]:
                raise CommandError("could not read " + ", ".join(sorted(status["errors"])) + " from the layer")
            return
        try:
            while True:
                self.show(layer, options, clear=not options["json"])
                time.sleep(options["watch"])
        except KeyboardInterrupt:
            self.stdout.write("")  # end the line the ^C was echoed on; exit 0

    def show(self, layer: Any, options: dict[str, Any], clear: bool = False) -> dict[str, Any]:
        limit = options["limit"]
        if options["json"]:
            status = collect_status(layer, DEFAULT_LIMIT if limit is None else limit)
            self.stdout.write(json.dumps(status, sort_keys=True, default=str))
        else:
            rows = TABLE_ROWS if limit is None else limit
            # Collect more than is shown, so the titles count them.
            collected = max(rows, DEFAULT_LIMIT)
            status = collect_status(layer, collected)
            text = render_text(status, rows, collected)
            if options["watch"] is not None:
                text += f"\n\nEvery {options['watch']:g}s; Ctrl-C ends."
            self.stdout.write((CLEAR_SCREEN if clear and self.stdout.isatty() else "") + text)
        self.stdout.flush()
        return status
