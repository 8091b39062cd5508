"""`interface-server --processes N`: which options combine with it, and the group's start (process_group.py)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import ServerConfig
from .listeners import GroupListeners, ListenError, remove_unix
from .process_group import STOP_MARGIN, ProcessGroup, write_status

logger = logging.getLogger("interface_server.group")

MAX_PROCESSES = 256


def group_args_problem(args: argparse.Namespace, given_layer: bool = False) -> str | None:
    """Why these options cannot run as a process group (the CLI exits 2 with it), or None."""
    if not 1 <= args.processes <= MAX_PROCESSES:
        return f"--processes must be 1 to {MAX_PROCESSES}"
    if args.processes == 1:
        return None
    if args.endpoint:
        # An endpoint string (ssl:, systemd:, ...) is opened by each process's reactor: N processes would
        # each bind it (the second fails) or each hold their own systemd socket. Only the parent can share one.
        return (
            "--endpoint cannot be used with --processes (each process would open it on its own); "
            "use --port/--bind, --unix-socket or --fd, or one interface-server per endpoint"
        )
    if given_layer:
        return "--processes needs the layer as module.path:attribute (each process imports it)"
    return None


def group_listeners(args: argparse.Namespace, config: ServerConfig, environ: dict[str, str]) -> GroupListeners:
    """The sockets of the group, from `--port`/`--bind`/`$PORT`/`--unix-socket`/`--fd` as without `--processes`.

    TCP when a host or port is given, or when nothing else (no UNIX socket,
    no `--fd`) is; 127.0.0.1:8000 by default.
    """
    port = args.port
    if port is None and environ.get("PORT"):
        port = int(environ["PORT"])  # config_from_args checked it is a number
    tcp = args.bind is not None or port is not None or not (args.unix_socket or config.fds)
    return GroupListeners(args.bind, port, tcp, args.unix_socket, list(config.fds))


def serve_group(
    args: argparse.Namespace,
    config: ServerConfig,
    layer: Any,
    environ: dict[str, str],
    serve: Callable[..., int],
) -> int:
    """Open the sockets, fork `args.processes` children each running `serve(...)` on them; supervise."""
    import twisted.internet

    if "twisted.internet.reactor" in sys.modules or getattr(twisted.internet, "reactor", None) is not None:
        # Its epoll instance would be shared by every child: each must install its own after the fork.
        logger.error("--processes: Twisted's reactor was imported before the fork (by the layer's module?)")
        return 1
    try:
        listeners = group_listeners(args, config, environ)
    except ListenError as exc:
        logger.error("Cannot listen: %s", exc)
        return 1
    for address in listeners.describe():
        logger.info("Process group listening on %s for %d processes", address, args.processes)
    status_dir = Path(tempfile.mkdtemp(prefix="interface-server-group-"))
    monitor = None
    if config.metrics_port is not None:
        from .group_metrics import GroupMonitor  # prometheus_client: only with --metrics-port

        try:
            monitor = GroupMonitor(config.metrics_host, config.metrics_port, status_dir)
        except OSError as exc:
            logger.error("Cannot listen: metrics port %s:%s: %s", config.metrics_host, config.metrics_port, exc)
            listeners.close()
            return 1
    if config.fallback_transports:
        # A fallback session lives in the memory of the process that opened it, and its next request
        # (a POST, a poll) comes on another connection, which the kernel may hand to another process.
        logger.warning(
            "--processes: the fallback transports (%s) are off: a session's requests could reach a process "
            "that does not hold it (docs/topics/performance.md)",
            ", ".join(config.fallback_transports),
        )
    child_config = dataclasses.replace(
        config,
        fallback_transports=[],
        endpoints=[],
        # Each child's own metrics on a private port; the parent serves their sum on --metrics-port.
        metrics_port=0 if config.metrics_port is not None else None,
        metrics_host="127.0.0.1",
    )

    def run_child(slot: int, fds: list[int]) -> int:
        def started(server: Any) -> None:
            listener = getattr(server, "metrics_listener", None)
            status = {
                "pid": os.getpid(),
                "slot": slot,
                "reply_prefix": server.reply_prefix,
                "metrics_port": listener.getHost().port if listener is not None else None,
            }
            write_status(status_dir, slot, status)
            logger.info("Interface-server process %d is slot %d of the group", os.getpid(), slot)

        return serve(args, dataclasses.replace(child_config, fds=list(fds)), layer, started)

    group = ProcessGroup(
        run_child,
        args.processes,
        listeners,
        stop_timeout=config.shutdown_grace + STOP_MARGIN,
        monitor=monitor,
    )
    try:
        return group.run()
    finally:
        listeners.close()
        if args.unix_socket:
            remove_unix(args.unix_socket)
        for path in status_dir.glob("*"):
            path.unlink()
        status_dir.rmdir()
