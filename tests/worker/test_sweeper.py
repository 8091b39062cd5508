"""worker/sweeper.py: the worker's lease and the sweeper thread (in-memory layer, in process)."""

from __future__ import annotations

import logging
import time

import pytest

from channels_core.layers import InMemoryChannelLayer
from tests.support.waiting import wait_for
from worker.sweeper import RECOVERY_GRACE, Sweeper, SweepingWorker, start_sweeper


@pytest.fixture
def layer():
    layer = InMemoryChannelLayer()
    yield layer
    layer.close()


def _dead_server(layer, holder="interface.response.dead!", sockets=3):
    layer.lease_renew(holder, 0.05, {"kind": "interface-server"})
    for i in range(sockets):
        reply = f"{holder}{i}"
        layer.lease_track(holder, reply, "websocket.disconnect", {"reply_channel": reply, "order": 0, "code": 1006})
    time.sleep(0.1)
    return holder


def test_tick_renews_the_worker_lease_and_sweeps_dead_servers_logging_the_count(layer, caplog):
    holder = _dead_server(layer)
    sweeper = Sweeper(layer, ["http.request", "websocket.connect"], lease_ttl=5)
    with caplog.at_level(logging.WARNING, logger="worker.sweeper"):
        assert sweeper.tick() == [holder]
    info = layer.lease_holders()[sweeper.holder]
    assert info["kind"] == "worker" and info["channels"] == ["http.request", "websocket.connect"]
    assert len(layer.receive_batch(["websocket.disconnect"], 10)) == 3
    assert "Swept 1 expired lease(s) (interface.response.dead!: 3): sent 3 disconnect(s)" in caplog.text
    assert sweeper.tick() == []
    sweeper.stop()
    assert sweeper.holder not in layer.lease_holders()


class FlakyLayer:
    """Delegates to a real layer, but its lease calls raise while `broken` is set."""

    def __init__(self, layer):
        self.layer = layer
        self.broken = True
        self.calls = 0

    def lease_renew(self, *args):
        self.calls += 1
        if self.broken:
            raise ConnectionError("Redis is down")
        return self.layer.lease_renew(*args)

    def __getattr__(self, name):
        return getattr(self.layer, name)


def test_a_failing_layer_never_stops_the_sweeper_thread(layer, caplog):
    flaky = FlakyLayer(layer)
    with caplog.at_level(logging.WARNING, logger="worker.sweeper"):
        sweeper = Sweeper(flaky, ["websocket.connect"], lease_ttl=0.3, interval=0.05).start()
        assert wait_for(lambda: flaky.calls >= 3, 5)
        assert sweeper._thread.is_alive()
        holder = _dead_server(layer)
        flaky.broken = False
        recovered = time.monotonic()
        assert wait_for(lambda: sweeper.swept_total == 1, RECOVERY_GRACE + 5)
        # After the outage it renewed only, for the grace period, before sweeping.
        assert time.monotonic() - recovered >= RECOVERY_GRACE - 0.1
        sweeper.stop()
    assert caplog.text.count("wait for the channel layer") == 1  # once per episode, not per tick
    assert "work again" in caplog.text
    assert sweeper.disconnects_total == 3 and holder not in layer.lease_holders()


def test_sweeping_worker_ends_the_lease_when_the_worker_returns(layer):
    class OneShot:
        ran = False

        def ready(self):
            pass

        def run(self):
            self.ran = True

    sweeper = start_sweeper(layer, ["websocket.connect"])
    assert wait_for(lambda: sweeper.holder in layer.lease_holders(), 5)
    worker = SweepingWorker(OneShot(), sweeper)
    worker.ready()
    worker.run()
    assert worker.ran  # attributes reach the wrapped worker
    assert sweeper.holder not in layer.lease_holders()


def test_no_sweeper_without_the_leases_extension():
    class Plain:
        extensions = ["groups"]

    assert start_sweeper(Plain(), ["x"]) is None


def test_runworker_refuses_a_lease_ttl_that_is_not_positive():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--lease-ttl must be positive"):
        call_command("runworker", "--lease-ttl", "0")
