"""`manage.py runworker`: run consumers from the channel layer."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management import BaseCommand, CommandError

from channels_core import DEFAULT_CHANNEL_LAYER
from channels_core.asgi import InvalidChannelLayerError, channel_layers
from channels_core.layers.errors import LayerConfigurationError
from channels_core.signals import worker_process_ready

logger = logging.getLogger("worker")


class Command(BaseCommand):
    help = "Runs worker processes that consume messages from the channel layer and run their consumers."
    leave_locale_alone = True

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--layer", default=DEFAULT_CHANNEL_LAYER, help="channel layer alias (default: default)")
        parser.add_argument(
            "--only-channels",
            action="append",
            default=[],
            metavar="GLOB",
            help="listen only on channels matching this glob (repeatable)",
        )
        parser.add_argument(
            "--exclude-channels",
            action="append",
            default=[],
            metavar="GLOB",
            help="do not listen on channels matching this glob (repeatable)",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            help=f"worker threads per process (default: two per CPU, 2 to 8; here {_default_threads()}). A slow "
            "consumer holds one thread: give slow work its own channel and workers (--only-channels)",
        )
        parser.add_argument(
            "--prefetch",
            type=int,
            default=1,
            help="messages a worker may take in one read when several are waiting (default 1). More saves a "
            "round trip per message under load, but a message taken waits for the ones before it even when "
            "another worker is idle: use it for fast consumers",
        )
        parser.add_argument(
            "--lease-ttl",
            type=float,
            default=5.0,
            help="seconds this worker's lease in the layer lasts without renewal; its sweeper thread renews it "
            "every second and sends the disconnects of interface servers whose lease expired. Interface servers "
            "answer HTTP 503 at once when no worker lease listens on http.request any more (default 5)",
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=1,
            help="worker processes, supervised and restarted when they die (default 1)",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="serve Prometheus /metrics, /healthz and /readyz on this port (0: any free port, logged); "
            "with --processes, the pool's parent serves the sum of its processes. Off by default",
        )
        parser.add_argument(
            "--metrics-host",
            default="127.0.0.1",
            help="address of the --metrics-port server (default 127.0.0.1; 0.0.0.0 for a scraper on another host)",
        )
        parser.add_argument(
            "--log-format",
            choices=("text", "json"),
            default="text",
            help="log lines as text (default) or one JSON object per line, for log shippers",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["threads"] is None:
            options["threads"] = _default_threads()
        if options["threads"] < 1 or options["processes"] < 1 or options["prefetch"] < 1:
            raise CommandError("--threads, --processes and --prefetch must be at least 1")
        if options.get("lease_ttl", 5.0) <= 0:
            raise CommandError("--lease-ttl must be positive")
        metrics_port = options.get("metrics_port")
        if metrics_port is not None and not 0 <= metrics_port <= 65535:
            raise CommandError("--metrics-port must be between 0 and 65535")
        _configure_logging(options["verbosity"], options.get("log_format", "text"))
        try:
            self.channel_layer = channel_layers[options["layer"]]
        except InvalidChannelLayerError as exc:
            raise CommandError(str(exc)) from None
        if self.channel_layer.local_only():
            raise CommandError(
                f"The {self.channel_layer} layer only works inside one process, so a separate worker cannot "
                "reach it. Use channels_core.layers.RedisChannelLayer for runworker, or `manage.py runserver`, "
                "which runs the workers in the same process."
            )
        self.channel_layer.router.check_default(http_consumer=self.get_consumer())
        try:
            self.channel_layer.check_store()
        except InvalidChannelLayerError as exc:
            raise CommandError(str(exc)) from None
        self.options = options
        from worker.worker import filter_channels

        channels = filter_channels(
            self.channel_layer.router.channels, options["only_channels"] or None, options["exclude_channels"] or None
        )
        if not channels:
            raise CommandError(
                "No channels left to listen on: the routing serves "
                f"{', '.join(sorted(self.channel_layer.router.channels))}; check --only-channels/--exclude-channels"
            )
        if options["processes"] > 1:
            from worker.pool import WorkerPool

            monitor = None
            if metrics_port is not None:
                from worker.metrics_pool import PoolMonitor

                try:
                    monitor = PoolMonitor(
                        options["processes"], options["metrics_host"], metrics_port, layer=self.channel_layer
                    )
                except OSError as exc:
                    raise CommandError(
                        f"Cannot serve metrics on {options['metrics_host']}:{metrics_port}: {exc}"
                    ) from None
            WorkerPool(self.make_worker, options["processes"], monitor=monitor).run()
            return
        worker_process_ready.send(sender=self)
        worker = self.make_worker()
        server = self.serve_metrics(worker) if metrics_port is not None else None
        worker.ready()
        try:
            worker.run()
        except LayerConfigurationError as exc:
            raise CommandError(f"{self.channel_layer.setting} cannot be used: {exc}") from None
        finally:
            if server is not None:
                server.stop()

    def serve_metrics(self, worker: Any) -> Any:
        """Start `/metrics`, `/healthz`, `/readyz` for this single worker process (`--metrics-port`)."""
        from worker.health import HealthServer, layer_problem, worker_problem
        from worker.metrics import exposition, single_process_registry

        registry = single_process_registry(worker.metrics, worker)
        layer = self.channel_layer

        def ready() -> str | None:
            return worker_problem(worker) or layer_problem(layer)

        try:
            return HealthServer(
                self.options["metrics_host"],
                self.options["metrics_port"],
                lambda: exposition(registry, worker.metrics),
                ready,
            ).start()
        except OSError as exc:
            raise CommandError(
                f"Cannot serve metrics on {self.options['metrics_host']}:{self.options['metrics_port']}: {exc}"
            ) from None

    def make_worker(self):
        from worker import Worker, WorkerGroup

        options = self.options
        kwargs = dict(
            callback=self.log_message if options["verbosity"] > 1 else None,
            only_channels=options["only_channels"] or None,
            exclude_channels=options["exclude_channels"] or None,
            prefetch=options["prefetch"],
        )
        if options.get("metrics_port") is not None:
            from worker.metrics import WorkerMetrics

            # In a pool child this runs after the fork: the values go to the pool's files.
            kwargs["metrics"] = WorkerMetrics()
        if options["threads"] > 1:
            worker = WorkerGroup(self.channel_layer, n_threads=options["threads"], **kwargs)
        else:
            worker = Worker(self.channel_layer, **kwargs)
        logger.info("Running worker against channel layer %s", self.channel_layer)
        from worker.sweeper import SweepingWorker, start_sweeper

        sweeper = start_sweeper(self.channel_layer, worker.channels(), options.get("lease_ttl", 5.0))
        return worker if sweeper is None else SweepingWorker(worker, sweeper)

    def get_consumer(self) -> Any:
        """Django views for `http.request`; static files too in DEBUG with staticfiles installed."""
        from django.apps import apps

        if settings.DEBUG and apps.is_installed("django.contrib.staticfiles"):
            from channels_core.staticfiles import StaticFilesConsumer

            return StaticFilesConsumer()
        from channels_core.handler import ViewConsumer

        return ViewConsumer()

    def log_message(self, channel: str, message: Any) -> None:
        logger.debug("%s %s", channel, message.get("path") or message.get("reply_channel") or "")


def _default_threads() -> int:
    from worker.worker import default_threads

    return default_threads()


def _configure_logging(verbosity: int, log_format: str = "text") -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    if log_format == "json":
        _configure_json_logging(level)
        return
    for name in ("worker", "channels_core"):
        log = logging.getLogger(name)
        if not log.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
            log.addHandler(handler)
        log.setLevel(level)


def _configure_json_logging(level: int) -> None:
    """`--log-format json`: every line on stderr is one JSON object (channels_core.layers.log_format).

    The root logger gets one JSON handler for the warnings and errors of
    every other library (Django's, the project's); the worker's own loggers
    keep the handlers the project's LOGGING gave them (where they write),
    switched to JSON, and stop propagating so no line is written twice.
    """
    from channels_core.layers.log_format import JsonFormatter, setup_logging

    setup_logging(logging.WARNING, "json")
    for name in ("worker", "channels_core"):
        log = logging.getLogger(name)
        if not log.handlers:
            log.addHandler(logging.StreamHandler())
        for handler in log.handlers:
            handler.setFormatter(JsonFormatter())
        log.propagate = False
        log.setLevel(level)
