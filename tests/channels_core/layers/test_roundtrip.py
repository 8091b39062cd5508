"""Property-based round trips: any mix of message values survives a layer unchanged."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels_core.layers import InMemoryChannelLayer, RedisChannelLayer

_SCALARS = (
    st.binary(max_size=64)
    | st.text(max_size=64)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.none()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
MESSAGES = st.dictionaries(st.text(max_size=20), _VALUES, max_size=8)


def _same(a, b):
    """Equality that also tells bytes from str and bool from int."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=False))
    return a == b


@pytest.fixture(params=["inmemory", "redis", "redis-encrypted"])
def layer(request, redis_url, key_prefix):
    if request.param == "inmemory":
        layer = InMemoryChannelLayer(capacity=10)
    else:
        keys = ["roundtrip-key"] if request.param == "redis-encrypted" else None
        layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, symmetric_encryption_keys=keys)
    yield layer
    layer.flush()
    layer.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=MESSAGES)
def test_any_message_round_trips_unchanged(layer, message):
    layer.send("rt.ch", message)
    channel, received = layer.receive(["rt.ch"])
    assert channel == "rt.ch"
    assert _same(received, message), (received, message)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=MESSAGES, members=st.integers(min_value=1, max_value=5))
def test_any_message_round_trips_through_a_group(layer, message, members):
    layer.flush()
    for i in range(members):
        layer.group_add("rtg", f"rt.proc!m{i}")
    layer.send_group("rtg", message)
    got = [layer.receive(["rt.proc!"]) for _ in range(members)]
    assert sorted(channel for channel, _ in got) == sorted(f"rt.proc!m{i}" for i in range(members))
    assert all(_same(received, message) for _, received in got)
