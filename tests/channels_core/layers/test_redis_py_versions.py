"""The Redis layer works with the oldest supported redis-py too, not only the newest.

Installs redis-py 5.0 into a scratch directory and runs the Redis conformance
suite in a subprocess that imports it ahead of the installed version.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]


def test_conformance_suite_passes_with_redis_py_5(tmp_path):
    target = tmp_path / "redis5"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(target),
            "redis==5.0.8",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), str(ROOT)]))
    version = subprocess.run(
        [sys.executable, "-c", "import redis; print(redis.__version__)"], env=env, capture_output=True, text=True
    )
    assert version.stdout.strip() == "5.0.8"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            # One server and Cluster (the code paths that touch redis-py's exceptions and connections);
            # Sentinel, shards and encryption add no redis-py call of their own and cost a minute here.
            "private or (TestRedisLayer and not Encrypted and not Sentinel and not TwoShards)",
            "tests/channels_core/layers/test_conformance.py",
            "tests/channels_core/layers/test_redis_py_private.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
