"""`interface-server module.path:channel_layer`: parse arguments, build a Server, run it."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import socket
import stat
import sys
from typing import Any

from channels_core.layers.log_format import LOG_FORMATS, TEXT_FORMAT, setup_logging

from .access import AccessLogGenerator
from .config import ServerConfig
from .endpoints import build_endpoints
from .origins import OriginPolicy

logger = logging.getLogger("interface_server")

_DEFAULTS = ServerConfig()


class UsageError(Exception):
    """Bad arguments or an unimportable layer: one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        # One line, not argparse's usage block: it is what a supervisor's log shows.
        raise UsageError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="interface-server",
        description="Terminate HTTP and WebSocket and exchange messages with workers over a channel layer.",
    )
    add = parser.add_argument
    # Optional to argparse only so that `--ws-protocol x app:layer` parses at all; `take_layer_path` requires it.
    add(
        "channel_layer",
        nargs="?",
        help="the layer object to use, as module.path:attribute (e.g. myproject.asgi:channel_layer)",
    )
    add("--version", action=_VersionAction, help="print the version and exit")
    add("-p", "--port", type=int, default=None, help="TCP port to listen on (default: $PORT when set, else 8000)")
    add("-b", "--bind", default=None, help="address to bind (default 127.0.0.1; use 0.0.0.0 on a platform)")
    add("-u", "--unix-socket", default=None, help="listen on this UNIX socket path")
    add("--fd", type=int, action="append", default=[], help="adopt this already-listening file descriptor")
    add(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="serve the same port(s) from N supervised server processes, one core each (default 1; see "
        "docs/topics/performance.md). Not with --endpoint",
    )
    add(
        "-e",
        "--endpoint",
        action="append",
        default=[],
        help="a Twisted endpoint string, e.g. ssl:443:privateKey=key.pem:certKey=cert.pem (repeatable)",
    )
    add("-v", "--verbosity", type=int, default=1, help="0 warnings only, 1 info (default), 2 debug")
    add(
        "-t",
        "--http-timeout",
        type=float,
        default=_DEFAULTS.http_timeout,
        help="seconds to wait for the first response message before answering 503 (default 120)",
    )
    add(
        "--websocket-timeout",
        "--websocket_timeout",
        type=float,
        default=None,
        help="maximum WebSocket lifetime in seconds; -1 for none (default: the layer's group_expiry)",
    )
    add(
        "--websocket-connect-timeout",
        "--websocket_connect_timeout",
        type=float,
        default=_DEFAULTS.websocket_connect_timeout,
        help="seconds the application has to accept a WebSocket before it is rejected with 403 (default 20)",
    )
    add(
        "--ping-interval",
        type=float,
        default=_DEFAULTS.ping_interval,
        help="seconds between keepalive pings on WebSockets (default 20)",
    )
    add(
        "--ping-timeout",
        type=float,
        default=_DEFAULTS.ping_timeout,
        help="seconds without a pong before a WebSocket is dropped (default 30)",
    )
    add(
        "--ws-protocol",
        nargs="*",
        action="extend",
        default=[],
        help="WebSocket sub-protocols to accept (repeatable; the first one the client offers that is listed is chosen)",
    )
    add("--root-path", default="", help="the application's root path (SCRIPT_NAME), e.g. /forum")
    add(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-For/-Port/-Proto (only behind a proxy that sets them)",
    )
    add("--access-log", default=None, help="access log file, or - for stdout (default: stdout at verbosity >= 1)")
    add(
        "--max-ws-message-size",
        type=int,
        default=_DEFAULTS.max_ws_message_size,
        help="largest WebSocket message accepted, in bytes; bigger ones close the socket with 1009 (default 1 MiB)",
    )
    add(
        "--ws-compression",
        action="store_true",
        help="accept permessage-deflate when a client offers it (default: off). A message sent to several "
        "sockets is deflated once per server (see docs/topics/compression.md)",
    )
    add(
        "--ws-compression-level",
        type=int,
        default=None,
        metavar="0-9",
        help="zlib level of --ws-compression: 1 fastest, 9 smallest, 0 stored (default 6)",
    )
    add(
        "--ws-compression-min-size",
        type=int,
        default=None,
        metavar="BYTES",
        help="messages shorter than this are sent uncompressed under --ws-compression (default 256)",
    )
    add(
        "--ws-compression-no-context-takeover",
        action="store_true",
        help="with --ws-compression: neither side keeps a deflate stream between messages (no deflate memory "
        "held per socket; each message compresses on its own, usually a little worse)",
    )
    add(
        "--ws-compression-per-socket",
        action="store_true",
        help="with --ws-compression: deflate each socket's copy of a group message on its own instead of once "
        "per server (for comparison; costs CPU per socket)",
    )
    add(
        "--max-request-body-size",
        type=int,
        default=_DEFAULTS.max_request_body_size,
        help="largest HTTP request body accepted, in bytes; bigger ones get 413 (default 100 MiB)",
    )
    add(
        "--shutdown-grace",
        type=float,
        default=_DEFAULTS.shutdown_grace,
        help="seconds in-flight HTTP requests get to finish on SIGTERM (default 30)",
    )
    add(
        "--send-timeout",
        type=float,
        default=_DEFAULTS.send_timeout,
        help="seconds a message may wait for a full channel or an unreachable layer (the socket is paused "
        "meanwhile) before the WebSocket is closed with 1013 or the request answered 503 (default 30)",
    )
    add(
        "--max-output-buffer",
        type=int,
        default=_DEFAULTS.max_output_buffer,
        help="bytes the server may hold for a client that does not read; past it the connection is closed "
        "(default 1 MiB)",
    )
    add(
        "--request-header-timeout",
        type=float,
        default=_DEFAULTS.request_header_timeout,
        help="seconds a client has to send a whole request head (default 10)",
    )
    add(
        "--request-body-timeout",
        type=float,
        default=_DEFAULTS.request_body_timeout,
        help="longest pause in a request body, in seconds (default 30)",
    )
    add(
        "--request-body-min-rate",
        type=int,
        default=_DEFAULTS.request_body_min_rate,
        help="bytes per second a request body must average (default 1024; 0 for no minimum)",
    )
    add(
        "--keepalive-timeout",
        type=float,
        default=_DEFAULTS.keepalive_timeout,
        help="seconds an idle keep-alive connection stays open (default 5)",
    )
    add(
        "--allowed-origins",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an Origin (e.g. https://example.com, or *.example.com) a WebSocket handshake may carry; "
        "repeat it for several (default: any)",
    )
    add(
        "--lease-ttl",
        type=float,
        default=_DEFAULTS.lease_ttl,
        help="seconds the server's lease in the layer lasts; renewed every third of it. When a server dies, "
        "its sockets' disconnects are sent by a worker once the lease expires (default 15)",
    )
    add(
        "--fallback-transports",
        default=",".join(_DEFAULTS.fallback_transports),
        metavar="LIST",
        help="serve sockets over these when a WebSocket cannot open: sse, poll (long-polling), comma-separated; "
        "'none' turns them off (default sse,poll; see docs/topics/fallback-transports.md)",
    )
    add(
        "--fallback-prefix",
        default=_DEFAULTS.fallback_prefix,
        help="the path under which the fallback transports answer, never passed to the application "
        "(default /_channels/)",
    )
    add(
        "--fallback-poll-timeout",
        type=float,
        default=_DEFAULTS.fallback_poll_timeout,
        help="seconds a long-poll with nothing to deliver is held before it is answered empty (default 25)",
    )
    add(
        "--fallback-session-timeout",
        type=float,
        default=_DEFAULTS.fallback_session_timeout,
        help="seconds a long-polling client may go without a poll before its socket is disconnected (default 15)",
    )
    add(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus /metrics, /healthz and /readyz on this port, on its own listener, never the "
        "public one (default: off; 0 picks a free port, logged at start)",
    )
    add(
        "--metrics-host",
        default=_DEFAULTS.metrics_host,
        help="address of the metrics listener (default 127.0.0.1; 0.0.0.0 for a scraper on another host)",
    )
    add(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text (default) or json: one JSON object per line (time, level, logger, message, and where known "
        "channel_type, client, path, status, size, duration_ms), access log included",
    )
    return parser


def _fallback_transports(text: str) -> list[str]:
    """`--fallback-transports sse,poll` as a list; 'none' (or nothing) is none."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if names == ["none"]:
        return []
    unknown = [name for name in names if name not in ("sse", "poll")]
    if unknown:
        raise UsageError(f"--fallback-transports: unknown transport {unknown[0]!r} (sse, poll or none)")
    return names


def _fallback_prefix(text: str) -> str:
    """`--fallback-prefix`: an absolute path ending with '/', of URL-safe characters."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/")
    if not text.startswith("/") or not text.endswith("/") or len(text) < 3 or not set(text) <= allowed:
        raise UsageError("--fallback-prefix must be a path such as /_channels/ (starting and ending with '/')")
    return text


class _VersionAction(argparse.Action):
    """`--version`: computed only when asked for (it imports Twisted and Autobahn to name them)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(version_line())
        parser.exit()


def version_line() -> str:
    """`interface-server <channels-core version> (...)` with the versions that decide its behaviour."""
    from importlib.metadata import PackageNotFoundError, version

    import autobahn
    import twisted

    from .h11_impl import DESCRIPTION

    try:
        own = version("channels-core")
    except PackageNotFoundError:
        own = "unknown (channels-core is not installed; running from a source tree?)"
    python = sys.version.split()[0]
    libraries = f"Twisted {twisted.__version__}, Autobahn {autobahn.__version__}, {DESCRIPTION}"
    return f"interface-server {own} (Python {python}, {libraries})"


_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def take_layer_path(args: argparse.Namespace) -> None:
    """Set `args.channel_layer`, recovering it from `--ws-protocol`'s values if they swallowed it.

    `--ws-protocol` takes any number of values (daphne 1.x's spelling,
    `--ws-protocol a b`), so `--ws-protocol x app:layer` gives it the layer
    path too. A sub-protocol name is an HTTP token, which cannot contain
    ":", and a layer path always does: that tells them apart.
    """
    protocols = args.ws_protocol
    if args.channel_layer is None and protocols and ":" in protocols[-1]:
        args.channel_layer = protocols.pop()
    for name in protocols:
        if not name or not set(name) <= _TCHAR:
            raise UsageError(f"--ws-protocol {name!r} is not a valid WebSocket sub-protocol name")
    if args.channel_layer is None:
        raise UsageError("the following arguments are required: channel_layer (module.path:attribute)")


def config_from_args(args: argparse.Namespace, environ: dict[str, str]) -> ServerConfig:
    port = args.port
    if port is None and environ.get("PORT"):
        try:
            port = int(environ["PORT"])
        except ValueError:
            raise UsageError(f"$PORT must be a port number, not {environ['PORT']!r}") from None
    endpoints = list(args.endpoint)
    if args.bind is not None or port is not None or args.unix_socket is not None or not (endpoints or args.fd):
        endpoints = build_endpoints(args.bind, port, args.unix_socket) + endpoints
    for name in (
        "http_timeout",
        "websocket_connect_timeout",
        "ping_interval",
        "ping_timeout",
        "shutdown_grace",
        "send_timeout",
        "request_header_timeout",
        "request_body_timeout",
        "keepalive_timeout",
        "lease_ttl",
        "fallback_poll_timeout",
        "fallback_session_timeout",
    ):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    for name in ("max_ws_message_size", "max_request_body_size", "max_output_buffer"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if args.request_body_min_rate < 0:
        raise UsageError("--request-body-min-rate must be 0 or more")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise UsageError("--metrics-port must be a port number (0 for any free port)")
    if args.metrics_port and args.metrics_port == port:
        raise UsageError("--metrics-port must differ from the public port (metrics are never served to clients)")
    compression = _compression_settings(args)
    try:
        OriginPolicy(args.allowed_origins or [])  # a bad pattern stops the start, not a handshake
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return ServerConfig(
        endpoints=endpoints,
        fds=list(args.fd),
        http_timeout=args.http_timeout,
        websocket_timeout=args.websocket_timeout,
        websocket_connect_timeout=args.websocket_connect_timeout,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        ws_protocols=list(args.ws_protocol or []),
        root_path=args.root_path.rstrip("/"),
        proxy_headers=args.proxy_headers,
        max_ws_message_size=args.max_ws_message_size,
        max_request_body_size=args.max_request_body_size,
        shutdown_grace=args.shutdown_grace,
        send_timeout=args.send_timeout,
        max_output_buffer=args.max_output_buffer,
        request_header_timeout=args.request_header_timeout,
        request_body_timeout=args.request_body_timeout,
        request_body_min_rate=args.request_body_min_rate,
        keepalive_timeout=args.keepalive_timeout,
        allowed_origins=list(args.allowed_origins or []),
        lease_ttl=args.lease_ttl,
        fallback_transports=_fallback_transports(args.fallback_transports),
        fallback_prefix=_fallback_prefix(args.fallback_prefix),
        fallback_poll_timeout=args.fallback_poll_timeout,
        fallback_session_timeout=args.fallback_session_timeout,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        ws_compression=compression,
    )


def _compression_settings(args: argparse.Namespace) -> Any:
    """`--ws-compression*` as `deflate.CompressionSettings`, or None when compression is off."""
    tuning = {
        "--ws-compression-level": args.ws_compression_level is not None,
        "--ws-compression-min-size": args.ws_compression_min_size is not None,
        "--ws-compression-no-context-takeover": args.ws_compression_no_context_takeover,
        "--ws-compression-per-socket": args.ws_compression_per_socket,
    }
    if not args.ws_compression:
        given = [flag for flag, set_ in tuning.items() if set_]
        if given:
            raise UsageError(f"{given[0]} needs --ws-compression")
        return None
    from .deflate import DEFAULT_LEVEL, DEFAULT_MIN_SIZE, CompressionSettings  # imports Autobahn: only when used

    level = DEFAULT_LEVEL if args.ws_compression_level is None else args.ws_compression_level
    min_size = DEFAULT_MIN_SIZE if args.ws_compression_min_size is None else args.ws_compression_min_size
    if not 0 <= level <= 9:
        raise UsageError("--ws-compression-level must be 0 to 9")
    if min_size < 0:
        raise UsageError("--ws-compression-min-size must be 0 or more")
    return CompressionSettings(
        level=level,
        min_size=min_size,
        no_context_takeover=args.ws_compression_no_context_takeover,
        shared=not args.ws_compression_per_socket,
        max_message_size=args.max_ws_message_size,
    )


def prepare_fds(fds: list[int]) -> None:
    """Check each `--fd` is an open listening socket and make it non-blocking.

    The reactor accepts in a loop until accept() would block, so a blocking
    socket (the default for one created by a parent or a supervisor) would
    hang the whole server on its second accept().
    """
    for fd in fds:
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            raise UsageError(f"--fd {fd} is not an open file descriptor") from None
        if not stat.S_ISSOCK(mode):
            raise UsageError(f"--fd {fd} is not a socket")
        sock = socket.socket(fileno=fd)
        try:
            if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                raise UsageError(f"--fd {fd} is not a listening stream socket")
        finally:
            sock.detach()
        os.set_blocking(fd, False)


def import_layer(path: str) -> Any:
    """Import `module.path:attribute` and check it looks like a channel layer."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"channel layer {path!r} must look like module.path:attribute")
    sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{module_name!r} has no attribute {attribute!r}") from None
    missing = [m for m in ("send", "receive") if not callable(getattr(obj, m, None))]
    if missing:
        raise UsageError(f"{path} is not a channel layer: it has no {', '.join(missing)}()")
    return obj


def _setup_logging(verbosity: int, log_format: str = "text") -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    if log_format == "json":
        setup_logging(level, "json")  # replaces any handler: every line must be JSON
    else:
        # basicConfig leaves a process's own logging alone (a live test server calls main() in-process).
        logging.basicConfig(level=level, format=TEXT_FORMAT)
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    globalLogBeginner.beginLoggingTo([STDLibLogObserver()], redirectStandardIO=False)


def main(argv: list[str] | None = None, layer: Any = None) -> int:
    """`interface-server` with the arguments `argv`; returns the exit code.

    `layer`, when given, is served instead of the `module.path:attribute`
    the command line would name (leave it out of `argv`): how a process that
    has built its layer already (a live test server's) hands it over.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if layer is None:
            take_layer_path(args)
        config = config_from_args(args, dict(os.environ))
        if args.processes != 1:
            from .process_group_cli import group_args_problem  # --processes: process_group_cli.py

            problem = group_args_problem(args, given_layer=layer is not None)
            if problem:
                raise UsageError(problem)
        prepare_fds(config.fds)
        if layer is None:
            layer = import_layer(args.channel_layer)
    except UsageError as exc:
        # Always one line, even when the message (e.g. from the layer's module) spans several.
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"interface-server: error: {message}", file=sys.stderr)
        return 2
    _setup_logging(args.verbosity, args.log_format)
    if args.processes != 1:
        from .process_group_cli import serve_group

        return serve_group(args, config, layer, dict(os.environ), serve)
    return serve(args, config, layer)


def serve(args: argparse.Namespace, config: ServerConfig, layer: Any, started: Any = None) -> int:
    """Run one server with `config` until it stops (logging already set up); returns the exit code.

    `started(server)`, when given, is called in the reactor once the server
    listens (a process group's child reports its reply channel and metrics port).
    """
    access_log = None
    access_class: Any = AccessLogGenerator
    if args.log_format == "json":
        from .metrics_log import JsonAccessLog

        access_class = JsonAccessLog
    if args.access_log == "-" or (args.access_log is None and args.verbosity >= 1):
        access_log = access_class(sys.stdout)
    elif args.access_log:
        access_log = access_class(open(args.access_log, "a", encoding="utf-8"))  # noqa: SIM115

    from .server import Server

    server = Server(layer, config, action_logger=access_log)
    logger.info("Replies arrive on %s", server.reply_prefix)
    from .h11_impl import DESCRIPTION

    logger.info("HTTP/1.1 parsing with %s", DESCRIPTION)
    if started is not None:
        from twisted.internet import reactor

        # callLater(0): after the startup triggers, among them the one in which server.run() listens.
        reactor.callWhenRunning(reactor.callLater, 0, started, server)
    server.run()
    return server.exit_code


if __name__ == "__main__":
    sys.exit(main())
