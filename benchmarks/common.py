"""Helpers every benchmark script uses: options, WebSocket clients, percentiles, the stop signal.

The server benchmarks' processes, ports and run bookkeeping are in `harness.py`.
"""

from __future__ import annotations

import argparse
import os
import statistics


def ws_connect(url: str):
    from websockets.asyncio.client import connect

    return connect(
        url, compression=None, ping_interval=None, proxy=None, open_timeout=60, close_timeout=10, max_queue=None
    )


def terminate(signum, frame) -> None:
    """Signal handler: stop the benchmark as Ctrl-C would, so its cleanup runs."""
    raise KeyboardInterrupt


def millis(value: float) -> str:
    return f"{value * 1e3:.3f} ms"


def percentile(samples: list[float], pct: int) -> float:
    if len(samples) == 1:
        return samples[0]
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


def columns(rows: list[list[str]]) -> list[str]:
    """`rows` of cells as aligned lines: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]
