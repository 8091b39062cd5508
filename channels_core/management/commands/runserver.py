"""`manage.py runserver`: the interface server and worker threads in one process (Channels 1.x's runserver).

    manage.py runserver [addrport] [--noworker] [--noasgi] [--http-timeout 60]
                        [--websocket-connect-timeout 20] [--threads 4] [--nothreading]
                        [--noreload] [--insecure] [--nostatic] [--layer default]

The interface server (HTTP and WebSocket) runs in a Twisted reactor and the
workers in daemon threads of the same process, all on one channel layer, so
the in-memory layer works and no Redis is needed to develop. With a Redis
layer, `--noworker` leaves the consuming to separate `runworker` processes.

This command overrides Django's (and staticfiles') `runserver` only if
`channels_core` is listed *before* `django.contrib.staticfiles` in
INSTALLED_APPS: the first app wins. Check `channels_core.W001` warns when
another app's runserver wins.

Threads. With `--noreload` the reactor runs in the main thread and owns the
signals: SIGINT/SIGTERM stop it gracefully (WebSockets closed with 1001,
in-flight responses get a few seconds), then the process exits with 0. With
the autoreloader, Django's reloader needs the main thread, so the reactor
runs in Django's "django-main-thread" without signal handlers; a reload or
a signal ends the main thread, and a threading-exit hook stops the reactor
gracefully before the process goes.
"""

from __future__ import annotations

import datetime
import errno
import logging
import os
import sys
import threading
import time
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management import CommandError
from django.db import connections
from django.utils import autoreload

from channels_core import DEFAULT_CHANNEL_LAYER
from channels_core.asgi import InvalidChannelLayerError, channel_layers
from channels_core.management.request_log import RequestLogger

if apps.is_installed("django.contrib.staticfiles"):
    from django.contrib.staticfiles.management.commands.runserver import Command as RunserverCommand
else:
    from django.core.management.commands.runserver import Command as RunserverCommand

logger = logging.getLogger("channels_core.runserver")

DEFAULT_WORKER_THREADS = 4
SHUTDOWN_GRACE = 5.0
"""Seconds in-flight HTTP responses get to finish when the server stops (Ctrl-C, SIGTERM, reload)."""

_LISTEN_ERRORS = {
    errno.EACCES: "You don't have permission to access that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
}


class Command(RunserverCommand):
    help = (
        "Starts a development server: the Channels interface server (HTTP and WebSocket) plus worker threads "
        "in one process, on the 'default' channel layer. Falls back to Django's WSGI server with --noasgi or "
        "when CHANNEL_LAYERS has no such layer."
    )

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--noworker",
            action="store_false",
            dest="run_worker",
            help="Do not run worker threads (run `manage.py runworker` separately, on a shared layer such as Redis).",
        )
        parser.add_argument(
            "--noasgi",
            action="store_false",
            dest="use_asgi",
            help="Run Django's plain WSGI development server instead (no WebSockets, no channel layer).",
        )
        parser.add_argument(
            "--http-timeout",
            "--http_timeout",
            type=float,
            default=60.0,
            dest="http_timeout",
            help="Seconds a view has to start its response before the server answers 503 (default 60).",
        )
        parser.add_argument(
            "--websocket-connect-timeout",
            "--websocket_connect_timeout",
            "--websocket-handshake-timeout",
            "--websocket_handshake_timeout",
            type=float,
            default=20.0,
            dest="websocket_connect_timeout",
            help="Seconds the websocket.connect consumer has to accept a WebSocket before it is rejected (default 20).",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=DEFAULT_WORKER_THREADS,
            help=f"Worker threads (default {DEFAULT_WORKER_THREADS}; --nothreading means 1).",
        )
        parser.add_argument(
            "--layer",
            default=DEFAULT_CHANNEL_LAYER,
            help="The CHANNEL_LAYERS alias to use (default: default).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["threads"] < 1:
            raise CommandError("--threads must be at least 1")
        for name in ("http_timeout", "websocket_connect_timeout"):
            if options[name] <= 0:
                raise CommandError(f"--{name.replace('_', '-')} must be positive")
        super().handle(*args, **options)

    # -- the server -----------------------------------------------------------------------

    def inner_run(self, *args: Any, **options: Any) -> None:
        if not options["use_asgi"]:
            return super().inner_run(*args, **options)
        alias = options["layer"]
        if alias not in channel_layers:
            if alias == DEFAULT_CHANNEL_LAYER:
                self.stdout.write(
                    self.style.WARNING(
                        "CHANNEL_LAYERS has no 'default' layer: running Django's WSGI development server "
                        "(no WebSockets). Add a layer, e.g. channels_core.layers.InMemoryChannelLayer, to use Channels."
                    )
                )
                return super().inner_run(*args, **options)
            raise CommandError(f"No channel layer named {alias!r} in CHANNEL_LAYERS")

        # If an exception was silenced in ManagementUtility.execute to be raised in the child, raise it now.
        autoreload.raise_last_exception()
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        self.check_migrations()
        for conn in connections.all(initialized_only=True):
            conn.close()

        try:
            self.channel_layer = channel_layers[alias]
            self.channel_layer.check_store()
        except InvalidChannelLayerError as exc:
            raise CommandError(str(exc)) from None
        self.channel_layer.router.check_default(http_consumer=self.get_consumer(**options))
        if options["run_worker"]:
            n_threads = options["threads"] if options["use_threading"] else 1
        else:
            n_threads = 0
        self.run_asgi(n_threads, **options)

    def get_consumer(self, **options: Any) -> Any:
        """Django views for `http.request`, behind the static files consumer when static files are served."""
        if self.serve_static(**options):
            from channels_core.staticfiles import StaticFilesConsumer, StaticFilesHandler

            if settings.DEBUG:
                return StaticFilesConsumer()

            class InsecureStaticFilesHandler(StaticFilesHandler):
                insecure = True  # --insecure: serve static files with DEBUG off, as staticfiles' runserver does

            class InsecureStaticFilesConsumer(StaticFilesConsumer):
                handler_class = InsecureStaticFilesHandler

            return InsecureStaticFilesConsumer()
        from channels_core.handler import ViewConsumer

        return ViewConsumer()

    def serve_static(self, **options: Any) -> bool:
        """As staticfiles' runserver: DEBUG or --insecure, unless --nostatic."""
        return (
            apps.is_installed("django.contrib.staticfiles")
            and options.get("use_static_handler", True)
            and (settings.DEBUG or options.get("insecure_serving", False))
        )

    def server_config(self, **options: Any) -> Any:
        from interface_server.config import ServerConfig
        from interface_server.endpoints import build_endpoints

        host = "0.0.0.0" if self.addr == "0" else self.addr
        return ServerConfig(
            endpoints=build_endpoints(host, int(self.port)),
            http_timeout=options["http_timeout"],
            websocket_connect_timeout=options["websocket_connect_timeout"],
            ws_protocols=list(getattr(settings, "CHANNELS_WS_PROTOCOLS", None) or []),
            root_path=(getattr(settings, "FORCE_SCRIPT_NAME", None) or "").rstrip("/"),
            shutdown_grace=SHUTDOWN_GRACE,
            server_name="channels-runserver",
        )

    def run_asgi(self, n_threads: int, **options: Any) -> None:
        """Start the worker threads, then run the reactor in this thread until it is stopped."""
        from twisted.internet import reactor

        from interface_server.compat import at_threading_exit
        from interface_server.server import Server

        _twisted_logging_to_stdlib()
        workers = self.start_workers(n_threads)
        server = Server(self.channel_layer.channel_layer, self.server_config(**options), RequestLogger())
        in_main_thread = threading.current_thread() is threading.main_thread()
        finished = threading.Event()
        if not in_main_thread:
            # Under the autoreloader the main thread belongs to Django's reloader; when it exits (a file
            # changed, Ctrl-C, SIGTERM) stop the reactor before the interpreter goes down.
            at_threading_exit(lambda: _stop_reactor_and_wait(reactor, finished))
        failure: list[str] = []

        def listening(ports: list) -> None:
            port = ports[0].getHost().port if ports else self.port
            self.print_banner(port, n_threads)

        def cannot_listen(reason: Any) -> None:
            failure.append(_listen_error(reason))
            reactor.stop()

        reactor.callWhenRunning(lambda: server.start().addCallbacks(listening, cannot_listen))
        try:
            reactor.run(installSignalHandlers=in_main_thread)
        finally:
            self.stop_workers(workers)
            finished.set()
        if failure:
            self.stderr.write(f"Error: {failure[0]}")
            if in_main_thread:
                sys.exit(1)
            # sys.exit would only end this thread, and the reloader would carry on without a server.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        shutdown_message = options.get("shutdown_message", "")
        if shutdown_message:
            self.stdout.write(shutdown_message)

    def start_workers(self, n_threads: int) -> list[tuple[Any, threading.Thread]]:
        from channels_core.signals import worker_process_ready
        from worker import Worker

        if not n_threads:
            return []
        worker_process_ready.send(sender=self)
        workers = []
        for i in range(n_threads):
            worker = Worker(self.channel_layer, signal_handlers=False)
            worker.ready()
            thread = threading.Thread(target=_run_worker, args=(worker,), name=f"runserver-worker-{i}", daemon=True)
            thread.start()
            workers.append((worker, thread))
        return workers

    def stop_workers(self, workers: list[tuple[Any, threading.Thread]]) -> None:
        """Let busy workers finish their message (briefly); idle ones are abandoned in their blocking read."""
        for worker, _thread in workers:
            worker.termed = True
        deadline = time.monotonic() + SHUTDOWN_GRACE
        for worker, thread in workers:
            while worker.in_job and thread.is_alive() and time.monotonic() < deadline:
                thread.join(0.05)

    def print_banner(self, port: int, n_threads: int) -> None:
        quit_command = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        if self._raw_ipv6:
            addr = f"[{self.addr}]"
        elif self.addr == "0":
            addr = "0.0.0.0"
        else:
            addr = self.addr
        now = datetime.datetime.now().strftime("%B %d, %Y - %X")
        if n_threads:
            workers = f"{n_threads} worker thread{'s' if n_threads != 1 else ''}"
        elif self.channel_layer.local_only():
            workers = self.style.WARNING(
                f"no worker threads (--noworker), and the {self.channel_layer} layer cannot be reached from another "
                "process: nothing will answer requests"
            )
        else:
            workers = "no worker threads (--noworker): run `manage.py runworker` against this layer"
        self.stdout.write(
            f"{now}\n"
            f"Django version {self.get_version()}, using settings {settings.SETTINGS_MODULE!r}\n"
            f"Starting ASGI/Channels development server at {self.protocol}://{addr}:{port}/\n"
            f"Channel layer {self.channel_layer}, {workers}\n"
            f"Quit the server with {quit_command}."
        )
        if os.environ.get("DJANGO_RUNSERVER_HIDE_WARNING") != "true":
            self.stdout.write(
                self.style.WARNING(
                    "WARNING: This is a development server. Do not use it in a production setting.\n"
                    "Use interface-server and runworker processes instead."
                )
            )
        self.stdout.flush()


def _run_worker(worker: Any) -> None:
    try:
        worker.run()
    except Exception:
        logger.exception("A runserver worker thread died")


def _listen_error(reason: Any) -> str:
    """A one-line reason a listen failed, Django's wording for the usual errno values."""
    failure = getattr(reason.value, "subFailure", reason)
    exc = failure.value
    socket_error = getattr(exc, "socketError", None) or exc
    code = getattr(socket_error, "errno", None)
    return _LISTEN_ERRORS.get(code) or failure.getErrorMessage()


_twisted_logging_started = False


def _twisted_logging_to_stdlib() -> None:
    """Send Twisted's own log events (unhandled errors in Deferreds, ...) to the `twisted` stdlib logger."""
    global _twisted_logging_started
    if _twisted_logging_started:
        return
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    globalLogBeginner.beginLoggingTo([STDLibLogObserver()], redirectStandardIO=False)
    _twisted_logging_started = True


def _stop_reactor_and_wait(reactor: Any, finished: threading.Event) -> None:
    if finished.is_set():
        return
    try:
        reactor.callFromThread(_stop_if_running, reactor)
    except Exception:
        return
    finished.wait(SHUTDOWN_GRACE + 2)


def _stop_if_running(reactor: Any) -> None:
    if reactor.running:
        try:
            reactor.stop()
        except Exception:  # ReactorNotRunning: already stopping
            pass
