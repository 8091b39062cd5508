"""benchmarks/processes_bench.py --quick: one process against two in one run, each figure with its ratio.

Slow (two stacks, wrk and hundreds of WebSockets from Node's `ws`) and alone (it loads both cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_peer_benchmarks import ratio_line

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.alone
def test_processes_bench_quick_measures_two_processes_against_one(tmp_path):
    out = tmp_path / "results.json"
    argv = [sys.executable, str(ROOT / "benchmarks" / "processes_bench.py"), "--quick", "--out", str(out)]
    argv += ["--private-redis"]  # no other test's keys or pauses
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-4000:]
    for measure in (
        "HTTP req/s at 50 clients, 2 processes (vs 1)",
        "HTTP p99 at 50 clients, 2 processes (vs 1)",
        "interface-server CPU per request, 2 processes (vs 1)",
        "shootout broadcast clients at p95 <= 500 ms, 2 processes (vs 1)",
        "shootout echo clients at p95 <= 500 ms, 2 processes (vs 1)",
    ):
        ratio_line(text, measure)
    results = json.loads(out.read_text())
    assert set(results["http"]) == {"1", "2"}
    # Both processes of the group served: each took a share of the interface-server CPU.
    for run in results["http"]["2"]["runs"]:
        assert len(run["server_cpu"]) == 2 and min(run["server_cpu"].values()) > 0, run["server_cpu"]
    for n in ("1", "2"):
        steps = results["shootout"][n]["steps"]
        assert steps and sum(s["missing"] for s in steps) == 0
        assert results["shootout"][n]["done"]["maxClients"] >= 100
        assert results["echo"][n]["done"]["maxClients"] >= 100
