"""The Redis layer works with the oldest supported redis-py too, not only the newest.

Installs redis-py 5.0 into a scratch directory and runs the Redis conformance
suite in a subprocess that imports it ahead of the installed version.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.scratch_install import install_into, run_pytest

pytestmark = pytest.mark.slow


def test_conformance_suite_passes_with_redis_py_5(tmp_path):
    env = install_into(tmp_path / "redis5", "redis==5.0.8", no_deps=True)
    version = subprocess.run(
        [sys.executable, "-c", "import redis; print(redis.__version__)"], env=env, capture_output=True, text=True
    )
    assert version.stdout.strip() == "5.0.8"
    run_pytest(
        env,
        "-k",
        # One server and Cluster (the code paths that touch redis-py's exceptions and connections);
        # Sentinel, shards and encryption add no redis-py call of their own and cost a minute here.
        "private or (TestRedisLayer and not Encrypted and not Sentinel and not TwoShards)",
        "tests/channels_core/layers/test_conformance.py",
        "tests/channels_core/layers/test_redis_py_private.py",
    )
