"""A smoke run of benchmarks/compression_bench.py: three servers, 50 sockets, every frame checked by the clients.

The figures of a --quick run mean little; what this checks is that the benchmark runs end to end, that every
socket inflated exactly the messages sent in each mode, and that it prints its rows and cleans up.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compression_bench_quick_run(redis_url):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "compression_bench.py"), "--quick", "--redis-url", redis_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for mode in ("off", "per-socket", "once"):
        assert f"{mode}: server CPU per broadcast to 50 sockets" in output, output
    assert "off: bytes on the wire per socket per message" in output
    assert "negotiated (none)" in output and "negotiated permessage-deflate" in output
    assert "bytes: once / per-socket" in output
    assert "MISSED" not in output.split("bytes: once / per-socket")[1].splitlines()[0], output
