"""A smoke run of benchmarks/floors_bench.py: the kernel's own costs, figures printed and sane, no child left.

The figures of a --quick run mean little; what this checks is that both floors are measured, that the
figures are positive numbers in a plausible range, and that the forked readers are gone after the run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_floors_bench_quick_prints_send_and_wake_costs():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "floors_bench.py"), "--quick"],
        cwd=ROOT / "benchmarks",
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    send = float(re.search(r"CPU per send\(\): median ([\d.]+) us", output).group(1))
    assert 0.1 < send < 1000, output
    for label in ("back to back", "1 ms apart"):
        p50 = float(re.search(rf"{label}.*?one way p50 ([\d.]+) us", output).group(1))
        assert 0.1 < p50 < 100_000, output
    assert "a broadcast to 1,000 sockets from one process: at least" in output
    assert re.search(r"at most [\d,]+ clients", output), output
