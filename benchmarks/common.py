"""Helpers every benchmark script uses: ports, child processes, WebSocket clients, percentiles."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import statistics

_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ws_connect(url: str):
    from websockets.asyncio.client import connect

    return connect(
        url, compression=None, ping_interval=None, proxy=None, open_timeout=60, close_timeout=10, max_queue=None
    )


def die_with_parent() -> None:
    """preexec_fn: SIGTERM the child if this process dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def terminate(signum, frame) -> None:
    """Signal handler: stop the benchmark as Ctrl-C would, so its cleanup runs."""
    raise KeyboardInterrupt


def millis(value: float) -> str:
    return f"{value * 1e3:.3f} ms"


def percentile(samples: list[float], pct: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def benchmark_parser(doc: str, quick_help: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: `--redis-url` and `--quick`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        help="Redis server to use (default: $REDIS_URL or redis://127.0.0.1:6379/0)",
    )
    parser.add_argument("--quick", action="store_true", help=quick_help)
    return parser
