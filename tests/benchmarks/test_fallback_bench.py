"""The fallback transports' benchmark (benchmarks/fallback_bench.py), as a small run: every transport echoes
every frame, in order, once, and the table has its three rows with ratios against the WebSocket."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import fallback_bench  # noqa: E402


def test_a_small_run_measures_every_transport():
    lines = fallback_bench.run(rounds=10, burst=150)
    assert lines[0].split()[0] == "transport"
    assert [line.split()[0] for line in lines[1:]] == ["websocket", "sse", "poll"]
    assert lines[1].split()[-1] == "1.00x"
    for line in lines[1:]:
        assert float(line.split()[-2].replace(",", "")) > 0  # frames/s of a burst that all came back
