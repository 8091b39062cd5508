"""What only the IPC layer has to show: processes killed at any instant, separate processes, its settings.

Processes are forked (the layer keeps no threads, so a fork is a clean new
user of it); each test has a prefix of its own and must leave nothing in /dev/shm.
"""

from __future__ import annotations

import fcntl
import hashlib
import multiprocessing
import os
import random
import re
import signal
import time
import uuid

import pytest

from channels_core.layers import ChannelFull
from channels_core.layers.ipc import IPCChannelLayer
from channels_core.layers.ipc.layer import flush_prefix, shared_objects

FORK = multiprocessing.get_context("fork")
BIG = 1024 * 1024 - 200  # bytes of payload in a message just under the 1 MiB limit


@pytest.fixture
def prefix():
    name = f"t{uuid.uuid4().hex[:12]}"
    yield name
    flush_prefix(name)
    assert shared_objects(name) == []


def _checked(n: int, size: int) -> dict:
    data = os.urandom(16) * (size // 16)
    return {"n": n, "data": data, "sha": hashlib.sha256(data).hexdigest()}


def _valid(message: dict) -> bool:
    return hashlib.sha256(message["data"]).hexdigest() == message["sha"]


# -- SIGKILL at any instant ------------------------------------------------------


def _writer(prefix: str, seed: int) -> None:
    """Send, send big, add and drop group members, broadcast, order, track leases: forever, until killed."""
    layer = IPCChannelLayer(prefix=prefix, capacity=20, group_expiry=30)
    rng = random.Random(seed)
    n = 0
    while True:
        n += 1
        action = rng.random()
        try:
            if action < 0.5:
                layer.send("kill.q", _checked(n, 64))
            elif action < 0.6:
                layer.send("kill.q", _checked(n, BIG))
            elif action < 0.7:
                layer.send_many("kill.q", [_checked(n, 64)] * 3)
            elif action < 0.8:
                layer.group_add("kill.g", f"kill.m{rng.randrange(5)}")
            elif action < 0.85:
                layer.group_discard("kill.g", f"kill.m{rng.randrange(5)}")
            elif action < 0.9:
                layer.send_group("kill.g", _checked(n, 64))
            elif action < 0.95:
                reply = f"kill.r!c{rng.randrange(3)}"
                if layer.order_claim(reply, n % 4, "kill.q", _checked(n, 64), 10, 100) == "run":
                    layer.order_advance(reply, n % 4)
            else:
                layer.lease_renew("kill.h!", 30)
                layer.lease_track("kill.h!", f"kill.h!c{n}", "kill.m0", _checked(n, 64))
                layer.lease_release("kill.h!", f"kill.h!c{n - 1}", "kill.m0", _checked(n, 64))
            layer.receive(["kill.q"])
        except ChannelFull:
            pass


@pytest.mark.slow
def test_writers_killed_at_random_instants_never_block_or_corrupt_the_others(prefix):
    layer = IPCChannelLayer(prefix=prefix, capacity=20, group_expiry=30)
    rng = random.Random(16)
    received = kills = 0
    started = time.monotonic()
    while time.monotonic() - started < 4:
        writers = [FORK.Process(target=_writer, args=(prefix, rng.random()), daemon=True) for _ in range(2)]
        for writer in writers:
            writer.start()
        time.sleep(rng.uniform(0.005, 0.08))
        for writer in writers:
            writer.kill()  # SIGKILL, wherever it is: in a write, holding a queue's or a group's flock
            writer.join(5)
            assert writer.exitcode == -signal.SIGKILL
            kills += 1
        # Every message there is whole; the survivors keep working at once.
        while True:
            channel, message = layer.receive(["kill.q", "kill.m0", "kill.m1", "kill.m2", "kill.m3", "kill.m4"])
            if channel is None:
                break
            assert _valid(message), f"corrupt message {message['n']} on {channel}"
            received += 1
        probe = time.monotonic()
        layer.send("kill.q", {"probe": True})
        assert layer.receive(["kill.q"]) == ("kill.q", {"probe": True})
        layer.group_add("kill.g", "kill.probe")
        assert "kill.probe" in layer.group_channels("kill.g")
        layer.group_discard("kill.g", "kill.probe")
        assert layer.order_claim("kill.r!probe", 0, "kill.q", {}, 10, 100) == "run"
        layer.order_forget("kill.r!probe")
        assert layer.lease_renew("kill.probe!", 30) == "held"
        assert time.monotonic() - probe < 5, "a dead writer held something up"
    assert kills >= 20 and received > 0, (kills, received)
    # Capacity is still exact: the dead writers' half-written files do not count.
    for _ in range(20):
        layer.send("kill.q", {})
    with pytest.raises(ChannelFull):
        layer.send("kill.q", {})
    layer.close()


def _hold_lock_then_hang(prefix: str, kind: str) -> None:
    """Take the queue's (or the group's) flock the way the layer does, then stop inside it."""
    layer = IPCChannelLayer(prefix=prefix, capacity=5)

    def hang(*args, **kwargs):
        time.sleep(60)

    if kind == "queue":
        os.rename = hang  # the rename into the queue happens under its flock
        layer.send("held.q", {})
    else:
        import channels_core.layers.ipc.groups as groups

        groups.os.rename = hang  # the group map is replaced under the group's flock
        layer.group_add("held.g", "held.m")


def _locked(path: str) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


@pytest.mark.parametrize("kind", ["queue", "group"])
def test_a_process_killed_holding_a_lock_blocks_nobody(prefix, kind):
    layer = IPCChannelLayer(prefix=prefix, capacity=5)
    layer.send("held.q", {"before": 1})
    layer.group_add("held.g", "held.q")
    lock = os.path.join(layer.root, "q", "held.q") if kind == "queue" else layer._groups.lock_path("held.g")
    holder = FORK.Process(target=_hold_lock_then_hang, args=(prefix, kind), daemon=True)
    holder.start()
    deadline = time.monotonic() + 10
    while not _locked(lock):
        assert time.monotonic() < deadline, "the child never took the lock"
        time.sleep(0.01)
    holder.kill()
    holder.join(5)
    started = time.monotonic()
    layer.send("held.q", {"after": 1})
    layer.group_add("held.g", "held.other")
    assert time.monotonic() - started < 5  # the child would have held the lock for 60 s
    assert [m for _, m in layer.receive_batch(["held.q"], 10)] == [{"before": 1}, {"after": 1}]
    assert set(layer.group_channels("held.g")) == {"held.q", "held.other"}
    layer.close()


# -- separate processes ------------------------------------------------------------


def _echo(prefix: str, count: int) -> None:
    """Receive `count` messages over several channels (blocking), echo each one back."""
    layer = IPCChannelLayer(prefix=prefix, blocking_timeout=30)
    for _ in range(count):
        channel, message = layer.receive(["xp.a", "xp.b", "xp.proc!"], block=True)
        layer.send("xp.back", {"channel": channel, "message": message, "at": time.time()})
    layer.close()


def test_a_blocked_receiver_in_another_process_wakes_on_any_of_its_channels(prefix):
    layer = IPCChannelLayer(prefix=prefix, blocking_timeout=10)
    echo = FORK.Process(target=_echo, args=(prefix, 4), daemon=True)
    echo.start()
    time.sleep(0.3)  # the echo process is parked in its wait
    sent = [("xp.b", {"i": 0}), ("xp.proc!s1", {"i": 1}), ("xp.a", {"i": 2, "big": b"x" * BIG})]
    for channel, message in sent:
        at = time.time()
        layer.send(channel, message)
        back, reply = layer.receive(["xp.back"], block=True)
        assert back == "xp.back" and (reply["channel"], reply["message"]) == (channel, message)
        # Woken by the send, not by the end of its 30 s wait.
        assert reply["at"] - at < 5
        time.sleep(0.1)
    layer.send("xp.a", {"last": True})
    assert layer.receive(["xp.back"], block=True)[1]["message"] == {"last": True}
    echo.join(5)
    assert echo.exitcode == 0
    layer.close()


def _drain(prefix: str, reader: int) -> None:
    layer = IPCChannelLayer(prefix=prefix, capacity=2000, blocking_timeout=30)
    while True:
        got = layer.receive_batch(["xd.work"], 7, block=True, timeout=2)
        if not got:
            break
        layer.send_many("xd.done", [{"n": m["n"], "reader": reader} for _, m in got])
    layer.close()


def test_readers_in_several_processes_share_a_channel_each_message_once(prefix):
    layer = IPCChannelLayer(prefix=prefix, capacity=2000)
    readers = [FORK.Process(target=_drain, args=(prefix, i), daemon=True) for i in range(3)]
    for reader in readers:
        reader.start()
    for n in range(600):
        layer.send("xd.work", {"n": n})
    done = []
    while len(done) < 600:
        got = layer.receive_batch(["xd.done"], 100, block=True, timeout=10)
        assert got, f"only {len(done)} of 600 came back"
        done += [m for _, m in got]
    for reader in readers:
        reader.join(10)
    assert sorted(m["n"] for m in done) == list(range(600))
    assert len({m["reader"] for m in done}) >= 2
    layer.close()


# -- settings and the shared objects --------------------------------------------------


def test_channel_memory_refuses_bytes_over_the_limit(prefix):
    layer = IPCChannelLayer(prefix=prefix, capacity=50, channel_memory=3 * 1024 * 1024)
    for _ in range(3):
        layer.send("mem.q", {"data": b"x" * (1024 * 1024 - 100)})
    with pytest.raises(ChannelFull):
        layer.send("mem.q", {"data": b"x" * (1024 * 1024 - 100)})
    layer.send("mem.q", {"small": True})  # a small one still fits
    layer.receive(["mem.q"])
    layer.send("mem.q", {"data": b"x" * (1024 * 1024 - 200)})
    layer.close()


def test_group_memory_limits_one_group(prefix):
    layer = IPCChannelLayer(prefix=prefix, group_memory=1000)
    for i in range(20):
        layer.group_add("gm", f"gm.member{i}")
    with pytest.raises(ChannelFull, match="group_memory"):
        for i in range(20, 200):
            layer.group_add("gm", f"gm.member{i}")
    layer.close()


_OTHER_TESTS_OBJECT = re.compile(r"^(sem\.)?t[0-9a-f]{12}\.")


def _new_shm_objects(before: set[str], prefix: str) -> set[str]:
    """Objects in /dev/shm since ``before``, leaving out those of other tests' layers.

    The suite runs on several xdist workers, so another test's layer (named with
    its own ``t<12 hex>`` prefix) may create objects meanwhile; anything else
    that appears is ours.
    """
    new = set(os.listdir("/dev/shm")) - before
    return {name for name in new if prefix in name or not _OTHER_TESTS_OBJECT.match(name)}


def test_every_shared_object_is_named_with_the_prefix_and_flush_removes_them(prefix):
    before = set(os.listdir("/dev/shm"))
    layer = IPCChannelLayer(prefix=prefix, blocking_timeout=0.2)
    layer.send("obj.q", {})
    layer.group_add("obj.g", "obj.q")
    assert layer.receive(["obj.empty"], block=True) == (None, None)  # creates this thread's bell
    created = _new_shm_objects(before, prefix)
    assert created and all(name.startswith((f"{prefix}.", f"sem.{prefix}.")) for name in created), created
    assert any(name.startswith("sem.") for name in created)
    layer.flush()
    assert shared_objects(prefix) == []
    assert _new_shm_objects(before, prefix) == set()
    # Still usable after a flush: directories and bells come back on use.
    layer.send("obj.q", {"again": 1})
    assert layer.receive(["obj.q"], block=True) == ("obj.q", {"again": 1})
    layer.close()


def test_prefix_is_checked():
    for bad in ("", "a/b", "a.b", "x" * 65):
        with pytest.raises(ValueError):
            IPCChannelLayer(prefix=bad)


def _die_waiting(prefix: str) -> None:
    """Leave a bell, its registration and a half-sent message behind, then die without closing."""
    layer = IPCChannelLayer(prefix=prefix, blocking_timeout=0.05)
    layer.receive(["dead.q"], block=True)
    layer._queues.write_tmp(b"half-sent")
    os.kill(os.getpid(), signal.SIGKILL)


def test_what_a_dead_process_left_is_swept_and_a_used_single_reader_channel_leaves_nothing(prefix):
    dead = FORK.Process(target=_die_waiting, args=(prefix,), daemon=True)
    dead.start()
    dead.join(5)
    assert dead.exitcode == -signal.SIGKILL
    bells = [p for p in shared_objects(prefix) if "/sem." in p]
    assert len(bells) == 1 and f".bell.{dead.pid}." in bells[0]
    root = os.path.join("/dev/shm", f"{prefix}.ipc")
    assert len(os.listdir(os.path.join(root, "t"))) == 1
    layer = IPCChannelLayer(prefix=prefix)  # a new user sweeps at start
    assert [p for p in shared_objects(prefix) if "/sem." in p] == []
    assert os.listdir(os.path.join(root, "t")) == []
    assert os.listdir(os.path.join(root, "w")) == []
    # A sender can still ring the queue the dead process waited on.
    layer.send("dead.q", {"ok": 1})
    assert layer.receive(["dead.q"]) == ("dead.q", {"ok": 1})
    reply = layer.new_channel("once?")
    layer.send(reply, {"n": 1})
    assert layer.receive([reply]) == (reply, {"n": 1})
    assert reply not in os.listdir(os.path.join(root, "q"))
    layer.close()


def test_a_receiver_that_waited_before_a_flush_is_still_woken_after_it(prefix):
    import threading

    layer = IPCChannelLayer(prefix=prefix, blocking_timeout=0.1)
    assert layer.receive(["fw.q"], block=True) == (None, None)  # registered and waited once
    layer.flush()  # removes its registration and its bell
    waiting = IPCChannelLayer(prefix=prefix, blocking_timeout=10)
    got = {}
    thread = threading.Thread(target=lambda: got.update(r=waiting.receive(["fw.q"], block=True)))
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    layer.send("fw.q", {"after": "flush"})
    thread.join(5)
    assert got["r"] == ("fw.q", {"after": "flush"}) and time.monotonic() - started < 5
    # And this thread, which waited before the flush (so the flush removed its bell), is woken too.
    timer = threading.Timer(0.2, waiting.send, ("fw.q", {"again": 1}))
    started = time.monotonic()
    timer.start()
    assert layer.receive_batch(["fw.q"], 1, True, 10) == [("fw.q", {"again": 1})]
    assert time.monotonic() - started < 5
    timer.join()
    waiting.close()
    layer.close()


def test_without_posix_ipc_the_layer_says_what_to_install(monkeypatch):
    import channels_core.layers.ipc.layer as layer_module

    monkeypatch.setattr(layer_module, "posix_ipc", None)
    with pytest.raises(ImportError, match=r"channels-core\[ipc\]"):
        IPCChannelLayer(prefix="unused")


def test_expired_messages_nobody_reads_are_swept_and_their_channels_leave_groups(prefix):
    layer = IPCChannelLayer(prefix=prefix, expiry=0.3)
    abandoned = layer.new_channel("gone.reply?")
    layer.group_add("sw.g", abandoned)
    layer.group_add("sw.g", "sw.alive")
    layer.send(abandoned, {"never": "read"})
    layer.send("sw.plain", {"never": "read"})
    queues = os.path.join(layer.root, "q")
    assert set(os.listdir(queues)) == {abandoned, "sw.plain"}
    time.sleep(0.4)
    layer.send("sw.alive", {"fresh": 1})  # a send past the interval sweeps
    assert set(os.listdir(queues)) == {"sw.alive", "sw.plain"}
    assert os.listdir(os.path.join(queues, "sw.plain")) == []
    assert layer.group_channels("sw.g") == ["sw.alive"]
    assert layer.receive(["sw.alive"]) == ("sw.alive", {"fresh": 1})
    layer.close()


def _send_three(prefix: str) -> None:
    layer = IPCChannelLayer(prefix=prefix, capacity=3)
    for _ in range(4):
        try:
            layer.send("st.x", {})
        except ChannelFull:
            pass
    layer.close()  # publishes its counts


def test_statistics_add_up_the_counts_of_every_process(prefix):
    layer = IPCChannelLayer(prefix=prefix, capacity=3)
    layer.send("st.y", {})
    child = FORK.Process(target=_send_three, args=(prefix,))
    child.start()
    child.join(10)
    assert child.exitcode == 0
    assert layer.global_statistics() == {"messages_count": 4, "channel_full_count": 1}
    stats = layer.channel_statistics("st.x")
    assert (stats["messages_count"], stats["channel_full_count"], stats["messages_pending"]) == (3, 1, 3)
    layer.flush()
    assert layer.global_statistics() == {"messages_count": 0, "channel_full_count": 0}
    layer.close()


def test_a_group_emptied_leaves_no_file(prefix):
    layer = IPCChannelLayer(prefix=prefix)
    layer.group_add("empty.g", "a")
    assert os.listdir(os.path.join(layer.root, "g")) == ["empty.g"]
    layer.group_discard("empty.g", "a")
    assert os.listdir(os.path.join(layer.root, "g")) == []
    layer.close()


def _send_later(prefix: str, channel: str, delay: float) -> None:
    time.sleep(delay)
    layer = IPCChannelLayer(prefix=prefix)
    layer.send(channel, {"from": "another process"})
    layer.close()


def test_event_receiver_fileno_becomes_readable_when_another_process_sends(prefix):
    import select

    layer = IPCChannelLayer(prefix=prefix)
    layer.send("ev!a", {"waiting": 1})
    receiver = layer.event_receiver(["ev!"], 2)
    receiver.start()
    assert select.select([receiver.fileno()], [], [], 1)[0]  # rung once at start: the waiting message
    assert receiver.read() == [("ev!a", {"waiting": 1})]
    assert not select.select([receiver.fileno()], [], [], 0.2)[0]
    assert receiver.read() == []
    sender = FORK.Process(target=_send_later, args=(prefix, "ev!b", 0.2))
    sender.start()
    started = time.monotonic()
    assert select.select([receiver.fileno()], [], [], 5)[0]
    assert time.monotonic() - started < 2
    assert receiver.read() == [("ev!b", {"from": "another process"})]
    sender.join(5)
    # More than max_messages waiting: read() rings itself for the rest.
    layer.send_many("ev!c", [{"i": i} for i in range(3)])
    assert select.select([receiver.fileno()], [], [], 1)[0]
    assert [m["i"] for _, m in receiver.read()] == [0, 1]
    assert select.select([receiver.fileno()], [], [], 1)[0]
    assert [m["i"] for _, m in receiver.read()] == [2]
    # A flush removes its registration: read() says so, and a new start() works.
    layer.flush()
    with pytest.raises(Exception, match="flushed"):
        receiver.read()
    receiver.start()
    layer.send("ev!d", {})
    assert select.select([receiver.fileno()], [], [], 1)[0]
    assert receiver.read() == [("ev!d", {})]
    receiver.close()
    assert os.listdir(os.path.join(layer.root, "w", "ev!")) == []
    layer.close()


def _flush_then_send(prefix: str, channel: str) -> None:
    time.sleep(0.2)
    layer = IPCChannelLayer(prefix=prefix)
    layer.flush()
    layer.send(channel, {"after": "flush"})
    layer.close()


def test_a_flush_by_another_process_wakes_an_event_receiver_which_registers_anew(prefix):
    """An interface server's reactor sleeps on its FIFO: a flush elsewhere must wake it, not strand it."""
    import select

    layer = IPCChannelLayer(prefix=prefix)
    receiver = layer.event_receiver(["srv!"], 10)
    receiver.start()
    assert select.select([receiver.fileno()], [], [], 1)[0]
    assert receiver.read() == []
    flusher = FORK.Process(target=_flush_then_send, args=(prefix, "srv!x"))
    flusher.start()
    assert select.select([receiver.fileno()], [], [], 5)[0], "the flush left the receiver asleep"
    flusher.join(5)
    with pytest.raises(Exception, match="flushed"):
        receiver.read()
    receiver.start()  # what the reply reader does on LayerConnectionError
    layer.send("srv!y", {"after": "restart"})
    assert select.select([receiver.fileno()], [], [], 1)[0]
    # What the flusher sent after its flush waited in the queue: nothing sent after a flush is lost.
    assert receiver.read() == [("srv!x", {"after": "flush"}), ("srv!y", {"after": "restart"})]
    receiver.close()
    layer.close()


# -- threads of one process waiting on the same channels -----------------------------


def test_a_send_wakes_one_of_the_threads_waiting_on_the_same_channels(prefix):
    """Threads take turns on one bell: a send wakes one thread, not all (a runworker's threads)."""
    import threading

    layer = IPCChannelLayer(prefix=prefix, blocking_timeout=10)
    looks = []
    take = layer._take
    layer._take = lambda queues, max_messages: looks.append(1) or take(queues, max_messages)
    got = []
    threads = [
        threading.Thread(target=lambda: got.append(layer.receive(["tw.a", "tw.b"], block=True))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # every thread is parked: one on the bell, three behind it
    looks.clear()
    layer.send("tw.b", {"n": 0})
    for _ in range(100):
        if got:
            break
        time.sleep(0.01)
    time.sleep(0.2)  # time for any other woken thread to look (and find nothing)
    assert got == [("tw.b", {"n": 0})]
    # The woken thread looks once; the next one to hold the turn need not: the one ring was for the one
    # message taken. A bell per thread made every thread look: four looks or more.
    assert len(looks) == 1, looks
    for n in range(1, 4):
        layer.send("tw.a", {"n": n})
    for thread in threads:
        thread.join(5)
    assert sorted(message["n"] for _, message in got) == [0, 1, 2, 3]
    layer.close()


def test_threads_taking_turns_receive_every_message_once_and_at_once(prefix):
    import threading

    layer = IPCChannelLayer(prefix=prefix, capacity=1000, blocking_timeout=10)
    got, late = [], []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            for _, message in layer.receive_batch(["tt.a", "tt.b"], 2, block=True, timeout=3):
                late.append(time.time() - message["at"])
                got.append(message["n"])

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for n in range(300):
        layer.send("tt.a" if n % 3 else "tt.b", {"n": n, "at": time.time()})
        if n % 10 == 0:
            time.sleep(0.005)  # bursts and pauses: turns change hands while messages arrive
    deadline = time.monotonic() + 10
    while len(got) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    layer.close()  # wakes the waiting thread; the others see the layer closed
    for thread in threads:
        thread.join(5)
    assert sorted(got) == list(range(300))
    assert max(late) < 2  # woken by the sends: a missed bell would wait out the 3 s timeout


def test_threads_taking_turns_find_every_message_of_a_send_many_at_once(prefix):
    """A send_many rings once per message, so the next thread looks while any may still wait."""
    import threading

    layer = IPCChannelLayer(prefix=prefix, blocking_timeout=10)
    got = []

    def reader() -> None:
        for _ in range(2):
            got.append(layer.receive_batch(["tm.a", "tm.b"], 1, block=True, timeout=10))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # all parked: one on the bell, two behind it
    started = time.monotonic()
    layer.send_many("tm.b", [{"n": n} for n in range(5)])
    layer.send("tm.a", {"n": 5})
    for thread in threads:
        thread.join(12)
    assert all(got), f"a reader waited out its timeout while messages were there: {got}"
    assert sorted(batch[0][1]["n"] for batch in got) == list(range(6))
    assert time.monotonic() - started < 5  # not one reader waiting out its 10 s for a message already there
    layer.close()
