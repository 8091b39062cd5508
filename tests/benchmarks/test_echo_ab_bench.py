"""benchmarks/echo_ab_bench.py --quick: this tree and HEAD echo side by side, each round with its ratio.

Slow: two stacks (an interface server and a worker each) start and echo 2 x 200 messages.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_echo_ab_bench_quick_prints_both_sides_and_the_ratio_of_each_round():
    argv = [sys.executable, str(ROOT / "benchmarks" / "echo_ab_bench.py"), "--quick", "--against", "HEAD"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-4000:]
    for side in ("this", "HEAD"):
        lines = re.findall(rf"^  {side} +p50 ([\d.]+) ms, p90 [\d.]+ ms, p99 [\d.]+ ms; CPU per echo: .*$", text, re.M)
        assert len(lines) == 2, text
        assert all(float(p50) > 0 for p50 in lines)
    ratios = re.search(r"^p50 ratio this/HEAD per round: ([\d.]+), ([\d.]+)$", text, re.M)
    assert ratios is not None, text
    assert all(0.1 < float(r) < 10 for r in ratios.groups())
