"""The interface server settles its heap once it listens (channels_core.layers.heap).

Without it the interface server's full garbage-collection passes walked ~100,000 startup objects,
51-63 ms each, and set the HTTP p99 (measured in heap.py's docstring); the effect is a benchmark
figure, so what is tested is that each real process does settle, once, after it starts.
"""

from __future__ import annotations

import re


def test_the_interface_server_settles_once_it_listens(start_server):
    server = start_server("-v", "2", wait_for="startup objects")
    out = server.output()
    frozen = re.findall(r"Froze (\d+) startup objects", out)
    assert len(frozen) == 1 and int(frozen[0]) > 10_000, out  # Twisted, Autobahn, h11, redis-py, ours
    assert out.index("Listening on") < out.index("startup objects")  # after its listeners are bound
