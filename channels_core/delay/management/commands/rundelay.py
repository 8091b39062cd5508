"""`manage.py rundelay`: the delay server (keeps `asgi.delay` messages and sends them when due)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management import BaseCommand, CommandError

from channels_core import DEFAULT_CHANNEL_LAYER
from channels_core.asgi import InvalidChannelLayerError, channel_layers
from channels_core.delay.worker import DelayWorker, supports_timed_receive
from channels_core.management.commands.runworker import _configure_logging

logger = logging.getLogger("channels_core.delay")


class Command(BaseCommand):
    help = "Runs the delay server: messages sent to asgi.delay are kept in the database and sent when due."
    leave_locale_alone = True

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--layer", default=DEFAULT_CHANNEL_LAYER, help="channel layer alias (default: default)")
        parser.add_argument(
            "--sleep",
            type=float,
            default=None,
            help="accepted for Channels 1.x compatibility and ignored: the server waits exactly until the next "
            "message is due instead of checking every N seconds",
        )
        parser.add_argument("--batch-size", type=int, default=100, help="messages stored or sent per transaction")

    def handle(self, *args: Any, **options: Any) -> None:
        _configure_logging(options["verbosity"])
        try:
            layer = channel_layers[options["layer"]]
        except InvalidChannelLayerError as exc:
            raise CommandError(str(exc)) from None
        if layer.local_only():
            raise CommandError(
                f"The {layer} layer only works inside one process, so a separate delay server cannot reach it. "
                "Use channels_core.layers.RedisChannelLayer for rundelay."
            )
        if not supports_timed_receive(layer):
            raise CommandError(f"The {layer} layer cannot block with a timeout (receive_batch(timeout=)).")
        if options["sleep"] is not None:
            logger.info("--sleep is not needed any more and is ignored: due messages are sent on time")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        logger.info("Running the delay server against channel layer %s", layer)
        DelayWorker(layer, batch_size=options["batch_size"]).run()
