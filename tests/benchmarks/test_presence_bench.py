"""The presence benchmark's measurements (benchmarks/presence_bench.py), as a smoke run on the in-memory layer."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import presence_bench  # noqa: E402

from channels_core.layers import InMemoryChannelLayer  # noqa: E402


def test_a_small_run_measures_and_checks_what_it_measured():
    layer = InMemoryChannelLayer()
    row = presence_bench.measure(layer, 50)
    assert len(row) == 5 and row[-1].endswith("x")
    assert float(row[0].replace(",", "")) > 0
    assert 0 < presence_bench.sweep(layer) < 5
    assert [m.channel for m in layer.presence_members("bench-sweep")] == ["bench.live!watcher"]
