"""`symmetric_encryption_keys` rotation under live traffic, on the real Redis.

The procedure (docs/failure-behaviour.md): 1. give every process `[old, new]` (still
encrypting with old; new is only accepted); 2. once all run it, switch to
`[new, old]` (new encrypts, old still accepted); 3. after the longest
message expiry, drop old. Here, receivers on `[new, old]` read while
senders on `[old]` (not yet redeployed) and on `[new, old]` send at full
speed, to a channel and to a group: nothing is lost or read twice. A
message under a key nobody has is dropped, counted and logged, and the
receivers go on.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from channels_core.layers import RedisChannelLayer
from tests.interface_server.harness import ServerProcess, http_request, layer_env

OLD, NEW, STRANGER = "old-key-0123456789", "new-key-9876543210", "someone-elses-key"
PER_SENDER = 300


def layer(redis_url: str, prefix: str, keys: list[str]) -> RedisChannelLayer:
    return RedisChannelLayer(
        hosts=[redis_url], prefix=prefix, blocking_timeout=1, capacity=10_000, symmetric_encryption_keys=keys
    )


def test_rotation_under_live_traffic_loses_nothing_and_drops_unknown_keys(redis_url, key_prefix, caplog):
    receivers = [layer(redis_url, key_prefix, [NEW, OLD]) for _ in range(2)]
    senders = {"old": layer(redis_url, key_prefix, [OLD]), "both": layer(redis_url, key_prefix, [NEW, OLD])}
    stranger = layer(redis_url, key_prefix, [STRANGER])
    for i in range(2):
        receivers[0].group_add("rot-group", f"rot.proc!{i}")
    got: list[tuple[str, str, int]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def receive(rx: RedisChannelLayer) -> None:
        while not stop.is_set():
            for channel, message in rx.receive_batch(["rot.work", "rot.proc!"], 50, block=True):
                with lock:
                    got.append((channel, message["from"], message["n"]))

    def send(name: str, tx: RedisChannelLayer) -> None:
        for n in range(PER_SENDER):
            tx.send("rot.work", {"from": name, "n": n})
            if n % 10 == 0:
                tx.send_group("rot-group", {"from": name, "n": n})

    caplog.set_level(logging.ERROR, "channels_core.layers.redis")
    threads = [threading.Thread(target=receive, args=(rx,), daemon=True) for rx in receivers]
    threads += [threading.Thread(target=send, args=(name, tx)) for name, tx in senders.items()]
    for t in threads:
        t.start()
    for n in range(20):  # a sender with a key nobody has, in the middle of the traffic
        stranger.send("rot.work", {"from": "stranger", "n": n})
        time.sleep(0.005)
    for t in threads[2:]:
        t.join(60)
    expected = 2 * (PER_SENDER + 2 * (PER_SENDER // 10))
    deadline = time.monotonic() + 20
    while len(got) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # anything extra (a duplicate) would show up now
    stop.set()
    for t in threads[:2]:
        t.join(5)
    try:
        work = sorted((s, n) for c, s, n in got if c == "rot.work")
        assert work == sorted((s, n) for s in senders for n in range(PER_SENDER)), "lost or duplicated"
        fanned = sorted((c, s, n) for c, s, n in got if c != "rot.work")
        assert fanned == sorted(
            (f"rot.proc!{i}", s, n) for i in range(2) for s in senders for n in range(0, PER_SENDER, 10)
        )
        drops = sum(rx.decoder.drops.counts.get("rot.work", 0) for rx in receivers)
        assert drops == 20, [rx.decoder.drops.counts for rx in receivers]
        assert "rot.work" in caplog.text and "InvalidToken" in caplog.text
        print(f"rotation: {len(got)} messages received, 0 lost, {drops} under an unknown key dropped and counted")
    finally:
        receivers[0].flush()
        for each in [*receivers, *senders.values(), stranger]:
            each.close()


@pytest.mark.slow
def test_rolling_rotation_of_servers_and_workers_under_http_load(redis_url, key_prefix):
    """The three steps as rolling deploys of an interface server and a worker each, with HTTP traffic throughout."""
    stop = threading.Event()
    results = {"ok": 0, "failed": []}
    servers: list[ServerProcess] = []
    workers: list[tuple[threading.Event, threading.Thread]] = []

    def start_server(keys: list[str]) -> ServerProcess:
        env = {"TEST_REDIS_URL": redis_url, **layer_env(key_prefix, symmetric_encryption_keys=keys, capacity=1000)}
        server = ServerProcess("tests.interface_server.layers:redis_layer", env=env).start()
        servers.append(server)
        return server

    def start_worker(keys: list[str]) -> None:
        done = threading.Event()
        wl = layer(redis_url, key_prefix, keys)

        def run() -> None:
            while not done.is_set():
                channel, message = wl.receive(["http.request"], block=True)
                if channel is not None:
                    wl.send(message["reply_channel"], {"status": 200, "content": b"ok"})
            wl.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        workers.append((done, thread))

    def retire(count: int) -> None:
        """Stop the oldest `count` servers and workers (a worker finishes what it took)."""
        for _ in range(count):
            servers.pop(0).stop()
            done, thread = workers.pop(0)
            done.set()
            thread.join(5)

    def client() -> None:
        i = 0
        while not stop.is_set():
            live = [s for s in servers if s.process is not None and s.process.poll() is None]
            if not live:
                continue
            server = live[i % len(live)]
            i += 1
            try:
                reply = http_request(server.port, "GET", "/r", timeout=10)
                if reply.status == 200:
                    results["ok"] += 1
                elif reply.status == 503 and server not in servers:
                    pass  # reached a server after its SIGTERM: "The server is shutting down."
                else:
                    results["failed"].append(reply.status)
            except OSError as exc:
                if server in servers:  # a server being retired may refuse; one still listed must not fail
                    results["failed"].append(repr(exc))

    start_server([OLD])
    start_worker([OLD])
    clients = [threading.Thread(target=client, daemon=True) for _ in range(3)]
    for t in clients:
        t.start()
    try:
        time.sleep(0.7)
        for keys in ([OLD, NEW], [NEW, OLD], [NEW]):  # step 1, step 2, step 3 (old key dropped)
            start_server(keys)
            start_worker(keys)
            time.sleep(0.7)
            retire(1)
            time.sleep(0.7)
    finally:
        stop.set()
        for t in clients:
            t.join(15)
        retire(len(servers))
    print(f"rolling rotation: {results['ok']} requests answered, failures: {results['failed']}")
    assert results["ok"] > 50
    assert results["failed"] == []
