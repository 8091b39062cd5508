"""The jitter test of group history (issue 18): clients of the WebSocketBridge's protocol resume a group
stream while a random third of them keep losing their TCP connection.

The load is benchmarks/history_jitter.py's (`run_jitter`): each client reconnects with
`?since=GROUP:EPOCH:OFFSET`; the connect consumer joins with `@resume_groups`. Every
client must get every broadcast once, in order, with replay p99 under 2 s. The quick
version runs in the default suite; the full one (1,000 clients, a broadcast every 200 ms
for 60 s, a third cut for 2 s every 15 s) is slow and runs alone, and prints its figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from channels_core.layers import RedisChannelLayer
from tests.support.redis_cluster import shared_setup as cluster_setup

from .harness import Stack

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import history_jitter  # noqa: E402


@pytest.fixture
def jitter_stack(stack, redis_url, key_prefix):
    stack.env["TEST_LAYER_CAPACITY"] = "100000"  # replays of hundreds of joins share the server's queue
    layer = RedisChannelLayer(
        hosts=[redis_url], prefix=key_prefix, group_history={"hist-*": {"size": 1000, "ttl": 300}}
    )
    yield stack, layer
    layer.flush()
    layer.close()


def test_quick_jitter_every_message_once_in_order(jitter_stack):
    stack, layer = jitter_stack
    stack.start_server()
    stack.start_worker("--threads", "2")
    figures, failures = history_jitter.jitter_with(stack.ws_url, layer, clients=60, seconds=7, period=1.5, log=print)
    print(json.dumps(figures))
    assert figures["cut_rounds"] == 3 and figures["cuts"] >= 30
    assert failures == [], figures


@pytest.mark.slow
@pytest.mark.alone
def test_jitter_1000_clients_60_seconds_a_third_cut_every_15_seconds(jitter_stack):
    stack, layer = jitter_stack
    stack.start_server()
    for _ in range(2):
        stack.start_worker("--threads", "2")
    figures, failures = history_jitter.jitter_with(stack.ws_url, layer, clients=1000, seconds=60, period=15, log=print)
    print("history jitter figures:", json.dumps(figures))
    assert figures["cut_rounds"] == 3 and figures["cuts"] >= 990
    assert failures == [], figures


def test_quick_jitter_on_redis_cluster(key_prefix, tmp_path):
    """The same on the shared 3+3 Redis Cluster: the group's sends and resumes take turns under its lock."""
    url = cluster_setup().url()
    cluster_stack = Stack(url, key_prefix, tmp_path, {"TEST_LAYER_CAPACITY": "100000"})
    layer = RedisChannelLayer(hosts=[url], prefix=key_prefix, group_history={"hist-*": {"size": 1000, "ttl": 300}})
    try:
        cluster_stack.start_server()
        cluster_stack.start_worker("--threads", "2")
        figures, failures = history_jitter.jitter_with(
            cluster_stack.ws_url, layer, clients=60, seconds=7, period=1.5, log=print
        )
        print(json.dumps(figures))
        assert figures["cut_rounds"] == 3 and figures["cuts"] >= 30
        assert failures == [], figures
    finally:
        cluster_stack.stop()
        layer.flush()
        layer.close()
