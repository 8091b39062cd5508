"""benchmarks/fanout_bench.py --quick: one consumer's broadcasts to hundreds of WebSockets, none lost.

Runs the stack twice, this tree against itself as --baseline (the turns and the ratios a change is
measured with), Node's `ws` as the load generator. Slow (two stacks, 200 and 500 sockets each) and
alone (it loads both cores).
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
def test_fanout_bench_quick_loses_nothing_and_prints_every_figure(tmp_path):
    out = tmp_path / "fanout.json"
    argv = [sys.executable, str(ROOT / "benchmarks" / "fanout_bench.py"), "--quick", "--out", str(out)]
    argv += ["--private-redis", "--baseline", str(ROOT)]  # no other test's keys or pauses
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-4000:]
    for n in ("200", "500"):
        ratio_line(text, f"last of {n} p99 (vs baseline)")
        ratio_line(text, f"server CPU per message, {n} (vs baseline)")
        assert f"CPU at {n}: load generator / interface server" in text
    results = json.loads(out.read_text())
    assert set(results["figures"]) == {"this 200", "baseline 200", "this 500", "baseline 500"}
    for key, figures in results["figures"].items():
        assert figures["missing"] == 0 and figures["extra"] == 0, (key, figures)
        assert figures["expected"] == 20 * int(key.split()[1])
        assert 0 < figures["p50"] <= figures["p99"] <= figures["max"]
        assert figures["loadgen"] > 0 and figures["server"] > 0
