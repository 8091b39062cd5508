"""The side-by-side layer benchmark's machinery (benchmarks/layer_kinds.py), on the layers that need no server.

A smoke run: each transport in its own process answers throughput and latency requests, a
layer's figures come back beside its raw floor's, and nothing is left in /dev/shm or /dev/mqueue.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

pytest.importorskip("posix_ipc")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import layer_kinds  # noqa: E402

from channels_core.layers.ipc.layer import shared_objects  # noqa: E402


def test_ipc_and_its_raw_floor_side_by_side_leave_nothing_behind():
    brokers = layer_kinds.Brokers("redis://127.0.0.1:6379/0", "amqp://unused", f"tbench{uuid.uuid4().hex[:8]}")
    try:
        rates = layer_kinds.throughput(["ipc", "raw-ipc", "inmemory"], brokers, 100)
        times = layer_kinds.latency(["ipc", "raw-ipc"], brokers, 10)
    finally:
        layer_kinds.cleanup(["ipc"], brokers)
    assert set(rates) == {"ipc", "raw-ipc", "inmemory"} and all(rate > 0 for rate in rates.values())
    assert {name: len(samples) for name, samples in times.items()} == {"ipc": 10, "raw-ipc": 10}
    assert all(0 < t < 1 for samples in times.values() for t in samples)
    assert shared_objects(brokers.prefix) == []
    if os.path.isdir("/dev/mqueue"):
        assert [name for name in os.listdir("/dev/mqueue") if name.startswith(brokers.prefix)] == []
