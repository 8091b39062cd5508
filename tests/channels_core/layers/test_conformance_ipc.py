"""The conformance suite against the IPC layer (tmpfs files, flock, POSIX semaphores; no broker).

Each test gets a prefix of its own; afterwards, flush must have left nothing
of it in /dev/shm (nor in /dev/mqueue, where mounted: the layer makes no
message queues).
"""

from __future__ import annotations

import os
import uuid

import pytest

from channels_core.layers.ipc import IPCChannelLayer
from channels_core.layers.ipc.layer import shared_objects

from .conformance import LayerConformance

SETTINGS = {"expiry": 1, "group_expiry": 2, "capacity": 5}


def leftovers(prefix: str) -> list[str]:
    found = shared_objects(prefix)
    if os.path.isdir("/dev/mqueue"):
        found += [name for name in os.listdir("/dev/mqueue") if name.startswith(prefix)]
    return found


@pytest.fixture
def ipc_prefix():
    return f"t{uuid.uuid4().hex[:12]}"


class TestIPCLayer(LayerConformance):
    @pytest.fixture
    def layer(self, ipc_prefix):
        layer = IPCChannelLayer(prefix=ipc_prefix, **SETTINGS)
        yield layer
        layer.flush()
        layer.close()
        assert leftovers(ipc_prefix) == []
