"""Rolling redeploy of every worker under 1,000 WebSockets of one group (issue 13, item 7).

A real interface-server and two `runworker` processes; 1,000 clients on
/fault/room/ (tests/stack/fault_consumers.py: connect joins "fault-room"),
each sending one frame a second that the echo consumer sends back, while this
process broadcasts to the group every 100 ms. Each worker in turn gets
SIGTERM, and once it has exited its replacement starts. Counted: sockets the
server closed, broadcasts a member missed, frames never echoed. Printed with
`-s`. ROLLING_SOCKETS / ROLLING_SECONDS in the environment change the load.
"""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time

import pytest

from .room_clients import RoomClients
from .test_worker_faults import fault_stack, sender_layer  # noqa: F401  (the fixture)

SOCKETS = int(os.environ.get("ROLLING_SOCKETS", "1000"))
SECONDS = float(os.environ.get("ROLLING_SECONDS", "20"))
BROADCAST_EVERY = 0.1


class Broadcaster(threading.Thread):
    """`send_group` of `b:<seq>` every `BROADCAST_EVERY` seconds; `sent` counts them, `errors` the failures."""

    def __init__(self, layer, group: str) -> None:
        super().__init__(name="broadcaster", daemon=True)
        self.layer = layer
        self.group = group
        self.sent = 0
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stopping.is_set():
            try:
                self.layer.send_group(self.group, {"text": f"b:{self.sent}"})
                self.sent += 1
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            next_at += BROADCAST_EVERY
            self.stopping.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)


@pytest.mark.alone
@pytest.mark.slow
def test_rolling_redeploy_of_every_worker_under_1000_websockets(fault_stack, redis_url, key_prefix):  # noqa: F811
    server = fault_stack.start_server()
    workers = [fault_stack.start_worker(), fault_stack.start_worker()]
    layer = sender_layer(redis_url, key_prefix)
    clients = RoomClients(fault_stack.ws_url + "/fault/room/", SOCKETS).start()
    started = time.monotonic()
    assert clients.wait_connected(120), f"{clients.connected} of {SOCKETS} connected"
    connect_errors = [c.connect_error for c in clients.clients if c.connect_error]
    assert not connect_errors, connect_errors[:5]
    connected_in = time.monotonic() - started
    deadline = time.monotonic() + 30
    while len(layer.group_channels("fault-room")) < SOCKETS and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(layer.group_channels("fault-room")) == SOCKETS

    broadcaster = Broadcaster(layer, "fault-room")
    broadcaster.start()
    traffic_started = time.monotonic()
    restarts = []
    time.sleep(SECONDS / 4)
    for i in range(len(workers)):
        old = workers[i]
        t0 = time.monotonic()
        old.send_signal(signal.SIGTERM)
        code = old.wait(60)
        stopped = time.monotonic() - t0
        workers[i] = fault_stack.start_worker()
        restarts.append((code, stopped, time.monotonic() - t0))
        time.sleep(SECONDS / 4)
    remaining = SECONDS - (time.monotonic() - traffic_started)
    if remaining > 0:
        time.sleep(remaining)
    broadcaster.stop()
    clients.stop_sending()
    time.sleep(3)  # the last broadcasts reach everyone
    clients.finish(60)

    states = clients.clients
    dropped = [c.dropped for c in states if c.dropped]
    missed = [broadcaster.sent - len(c.broadcasts) for c in states if not c.dropped]
    unechoed = [len(c.sent - c.echoed) for c in states if not c.dropped]
    frames = sum(len(c.sent) for c in states)
    print(
        f"\nrolling redeploy, {SOCKETS} sockets (connected in {connected_in:.1f}s), {SECONDS:g}s of traffic:"
        f"\n  workers: {', '.join(f'exit {c} after {s:.1f}s, replaced in {r:.1f}s' for c, s, r in restarts)}"
        f"\n  sockets dropped by the server: {len(dropped)} {sorted(set(dropped))[:5]}"
        f"\n  broadcasts: {broadcaster.sent} sent ({len(broadcaster.errors)} send errors), "
        f"{sum(missed)} deliveries lost (members missing any: {sum(1 for m in missed if m)}, "
        f"median missed {statistics.median(missed) if missed else 0})"
        f"\n  frames: {frames} sent, {sum(unechoed)} never echoed"
    )
    print("  server counters:", [line for line in server.output().splitlines() if "drop" in line.lower()][:10])
    assert all(code == 0 for code, _, _ in restarts), restarts
    assert not broadcaster.errors, broadcaster.errors[:5]
    assert dropped == [], f"{len(dropped)} sockets dropped: {sorted(set(dropped))[:5]}"
    assert sum(missed) == 0, f"{sum(missed)} broadcast deliveries lost"
    assert sum(unechoed) == 0, f"{sum(unechoed)} frames of {frames} never echoed"


OVERLOAD_SOCKETS = 200
OVERLOAD_INTERVAL = 0.25  # 800 frames/s offered; two one-thread workers take about 400 (4 ms each)
OVERLOAD_SECONDS = 5.0


@pytest.mark.alone
@pytest.mark.slow
def test_a_redeploy_above_what_the_workers_can_process_makes_sockets_wait_not_close(
    fault_stack,  # noqa: F811
    redis_url,
    key_prefix,
):
    """Twice the traffic the workers can take, and each worker replaced meanwhile: the sockets wait.

    websocket.receive (capacity 100) stays full; the server pauses the sockets whose frames wait
    (TCP pushes back on the clients) instead of closing them, and every frame is echoed once the
    backlog drains.
    """
    fault_stack.start_server()
    workers = [fault_stack.start_worker("--threads", "1"), fault_stack.start_worker("--threads", "1")]
    layer = sender_layer(redis_url, key_prefix)
    clients = RoomClients(
        fault_stack.ws_url + "/fault/busy/", OVERLOAD_SOCKETS, frame_interval=OVERLOAD_INTERVAL, echo_wait=60
    ).start()
    assert clients.wait_connected(60), f"{clients.connected} of {OVERLOAD_SOCKETS} connected"
    started = time.monotonic()
    time.sleep(OVERLOAD_SECONDS / 4)
    for i in range(len(workers)):
        workers[i].send_signal(signal.SIGTERM)
        assert workers[i].wait(60) == 0
        workers[i] = fault_stack.start_worker("--threads", "1")
        time.sleep(OVERLOAD_SECONDS / 4)
    time.sleep(max(0.0, OVERLOAD_SECONDS - (time.monotonic() - started)))
    clients.stop_sending()
    full = layer.channel_statistics("websocket.receive")["channel_full_count"]
    clients.finish(90)
    drained = time.monotonic() - started

    states = clients.clients
    dropped = [c.dropped for c in states if c.dropped]
    frames = sum(len(c.sent) for c in states)
    unechoed = sum(len(c.sent - c.echoed) for c in states if not c.dropped)
    print(
        f"\noverload redeploy: {OVERLOAD_SOCKETS} sockets, {frames} frames offered in {OVERLOAD_SECONDS:g}s "
        f"({frames / OVERLOAD_SECONDS:.0f}/s), websocket.receive full {full} times; all echoed after "
        f"{drained:.1f}s; sockets dropped {len(dropped)}, frames never echoed {unechoed}"
    )
    assert full > 0, "the workers kept up: this did not overload them"
    assert dropped == [], f"{len(dropped)} sockets dropped: {sorted(set(dropped))[:5]}"
    assert unechoed == 0, f"{unechoed} frames of {frames} never echoed"
