"""RabbitMQ layer behaviour beyond the conformance suite: settings, held deliveries, threads, processes."""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys
import threading
import time

import pika
import pytest

from channels_core.layers import ChannelFull, LayerConfigurationError, LayerConnectionError
from channels_core.layers.rabbitmq import RabbitMQChannelLayer, RabbitmqChannelLayer
from channels_core.layers.rabbitmq.flush import flush_prefix
from channels_core.layers.rabbitmq.settings import DEFAULT_URL, connection_parameters, resolve_url

from .conformance import race_ordered_claims

URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture
def make_layer(key_prefix):
    layers = []

    def make(**options):
        options.setdefault("expiry", 10)
        layer = RabbitMQChannelLayer(URL, prefix=key_prefix, **options)
        layers.append(layer)
        return layer

    yield make
    layers[0].flush()
    for layer in layers:
        layer.close()


def test_url_comes_from_the_setting_then_the_environment():
    assert resolve_url("amqp://a/", {"RABBITMQ_URL": "amqp://b/"}) == "amqp://a/"
    assert resolve_url(None, {"RABBITMQ_URL": "amqp://b/", "CLOUDAMQP_URL": "amqp://c/"}) == "amqp://b/"
    assert resolve_url(None, {"CLOUDAMQP_URL": "amqps://c/"}) == "amqps://c/"
    assert resolve_url(None, {}) == DEFAULT_URL
    assert RabbitmqChannelLayer is RabbitMQChannelLayer


def test_connection_parameters_heartbeat_name_and_tls():
    params = connection_parameters("amqps://u:p@broker.example:5671/vh", 15, "web-1 (send)")
    assert params.ssl_options is not None and params.port == 5671 and params.virtual_host == "vh"
    assert params.heartbeat == 15
    assert params.client_properties["connection_name"] == "web-1 (send)"
    assert connection_parameters("amqp://h/?heartbeat=7", 30).heartbeat == 7  # the URL wins
    with pytest.raises(ValueError, match="amqp://"):
        connection_parameters("redis://localhost", 30)


def test_the_private_pika_members_the_batch_path_uses_exist():
    # pipelined.py relies on these (see its docstring); a pika upgrade that moves them fails here first.
    assert hasattr(pika.adapters.blocking_connection.BlockingChannel, "_flush_output")
    assert hasattr(pika.connection.Connection, "_output_marshaled_frames")
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    try:
        channel = connection.channel()
        assert hasattr(channel, "_impl") and hasattr(channel._impl.connection, "_body_max_length")
        # coalesce_writes: the plaintext transport's buffers and the method that writes them.
        transport = connection._impl._transport
        assert type(transport).__name__ == "_AsyncPlaintextTransport"
        assert isinstance(transport._tx_buffers, collections.deque) and callable(transport._produce)
    finally:
        connection.close()


def test_a_coalescing_connection_writes_several_frames_with_one_send(make_layer, key_prefix, monkeypatch):
    layer = make_layer()
    layer.send("co.test", {})  # opens the sending connection
    connection = layer._publisher._connection
    transport = connection._impl._transport
    channel = connection.channel()
    sends: list[int] = []
    real_send = transport._sigint_safe_send
    monkeypatch.setattr(
        transport, "_sigint_safe_send", lambda sock, data: sends.append(len(data)) or real_send(sock, data)
    )
    for _ in range(3):
        channel._impl.basic_publish("", key_prefix + "co.nowhere", b"x")  # nine frames queued, none written
    channel.basic_qos(prefetch_count=0)  # a tenth, then the wait for its reply writes them all
    assert len(sends) == 1, sends
    layer.send("co.test", {"n": 2})  # a publish: method, header and body frames
    assert len(sends) == 2, sends
    assert layer.receive(["co.test"], block=True) == ("co.test", {})


def test_deliveries_held_by_a_process_that_stops_reading_go_to_another_reader_once(make_layer):
    """A reader holds one prefetched delivery per normal channel; when it stops asking, another reader gets it."""
    first = make_layer(idle_cancel=0.5)
    second = make_layer()
    first.send_many("held", [{"i": i} for i in range(6)])
    got = [first.receive(["held"], block=True)[1]["i"]]  # its consumer now holds the next one, unread
    time.sleep(3.0)  # past idle_cancel and the 1 s housekeeping tick: the held delivery goes back
    while True:
        channel, message = second.receive(["held"])
        if channel is None:
            break
        got.append(message["i"])
    assert sorted(got) == list(range(6))


def test_a_closed_reader_gives_its_held_single_reader_messages_back_in_order(make_layer):
    first = make_layer()
    reply = first.new_channel("held.reply?")
    for i in range(10):
        first.send(reply, {"i": i})
    assert first.receive([reply])[1] == {"i": 0}  # the other 9 arrived in its buffer (prefetch 100)
    first.close()
    second = make_layer()
    assert [m["i"] for _, m in second.receive_batch([reply], 20)] == list(range(1, 10))


def test_many_threads_share_one_layer_and_every_message_arrives_once(make_layer):
    layer = make_layer(blocking_timeout=0.5)  # so the receivers notice `stop` quickly
    received: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def receiver():
        while not stop.is_set():
            channel, message = layer.receive(["mt.a", "mt.b"], block=True)
            if channel is not None:
                with lock:
                    received.append(message["n"])

    def sender(base):
        for i in range(100):
            layer.send("mt.a" if i % 2 else "mt.b", {"n": base + i})

    receivers = [threading.Thread(target=receiver) for _ in range(3)]
    senders = [threading.Thread(target=sender, args=(k * 1000,)) for k in range(3)]
    for thread in receivers + senders:
        thread.start()
    for thread in senders:
        thread.join(30)
    deadline = time.monotonic() + 10
    while len(received) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for thread in receivers:
        thread.join(10)
    assert sorted(received) == sorted(k * 1000 + i for k in range(3) for i in range(100))


_CHILD = """
import sys
from channels_core.layers.rabbitmq import RabbitMQChannelLayer
layer = RabbitMQChannelLayer(sys.argv[1], prefix=sys.argv[2], expiry=10)
layer.send("xp.ready", {})
got = []
while len(got) < 20:
    channel, message = layer.receive(["xp!"], block=True)
    if channel is not None:
        got.append(channel + "=" + str(message["i"]))
layer.send("xp.done", {"got": got})
layer.close()
"""


def test_a_process_queue_is_read_by_another_process_in_order(make_layer, key_prefix):
    layer = make_layer()
    child = subprocess.Popen([sys.executable, "-c", _CHILD, URL, key_prefix], cwd=os.getcwd())
    try:
        assert layer.receive_batch(["xp.ready"], 1, block=True, timeout=20)
        for i in range(20):
            layer.send(f"xp!s{i % 3}", {"i": i})
        (done,) = layer.receive_batch(["xp.done"], 1, block=True, timeout=20)
        assert done[1]["got"] == [f"xp!s{i % 3}={i}" for i in range(20)]
        assert child.wait(10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_without_ack_confirmation_messages_still_arrive_once_in_order(make_layer):
    layer = make_layer(confirm_acks=False)
    reply = layer.new_channel("nc.reply?")
    for i in range(20):
        layer.send(reply, {"i": i})
        layer.send("nc.work", {"i": i})
    assert [layer.receive([reply], block=True)[1]["i"] for _ in range(20)] == list(range(20))
    assert sorted(layer.receive(["nc.work"], block=True)[1]["i"] for _ in range(20)) == list(range(20))
    assert layer.receive([reply, "nc.work"]) == (None, None)


def test_a_layer_idle_for_several_heartbeats_still_sends_and_receives(make_layer):
    # pika's blocking connections send heartbeats only when used: the layer services both of its own.
    layer = make_layer(heartbeat=1)
    layer.send("hb.test", {"n": 1})
    assert layer.receive(["hb.test"], block=True) == ("hb.test", {"n": 1})
    sending = layer._publisher._connection
    time.sleep(3.5)  # the broker closes a connection that missed two heartbeats
    layer.send("hb.test", {"n": 2})
    assert layer.receive(["hb.test"], block=True) == ("hb.test", {"n": 2})
    assert layer._receiver.reconnects == 0 and layer._publisher._connection is sending  # kept alive, not reopened


def test_processes_that_disagree_on_settings_get_a_configuration_error_naming_them(make_layer):
    first = make_layer(capacity=5)
    first.send("cfg.q", {})
    other = make_layer(capacity=7)  # same prefix, another capacity: RabbitMQ refuses the queue's new arguments
    with pytest.raises(LayerConfigurationError, match="x-max-length.*same expiry, capacity"):
        other.send("cfg.q", {})
    with pytest.raises(LayerConfigurationError, match="x-max-length"):
        other.receive(["cfg.q"])
    other.send("cfg.other", {"still": "works"})  # the layer recovers for everything else
    assert other.receive(["cfg.other"], block=True) == ("cfg.other", {"still": "works"})
    assert first.receive(["cfg.q"]) == ("cfg.q", {})


def test_without_pika_the_package_imports_and_the_layer_says_what_to_install():
    script = (
        "import sys; sys.modules['pika'] = None\n"
        "import channels_core.layers.rabbitmq as package\n"
        "try:\n"
        "    package.RabbitMQChannelLayer\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install 'channels-core[rabbitmq]'" in done.stdout


def test_channels_core_layers_names_the_layer_without_importing_pika():
    script = (
        "import sys\n"
        "import channels_core.layers as layers\n"
        "from channels_core.layers import *\n"
        "assert 'pika' not in sys.modules, 'imported at import time'\n"
        "cls = layers.RabbitMQChannelLayer\n"
        "from channels_core.layers import RabbitmqChannelLayer\n"
        "from channels_core.layers.rabbitmq.layer import RabbitMQChannelLayer\n"
        "assert cls is RabbitmqChannelLayer is RabbitMQChannelLayer\n"
        "assert 'pika' in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


_POOL_WORKER = """
import sys, time
from channels_core.layers.rabbitmq import RabbitMQChannelLayer
layer = RabbitMQChannelLayer(sys.argv[1], prefix=sys.argv[2], expiry=30, capacity=1000, blocking_timeout=0.5)
print("ready", flush=True)
while True:
    channel, message = layer.receive(["pool.work"], block=True)
    if channel is None:
        continue
    if message.get("stop"):
        break
    print(message["i"], flush=True)
    time.sleep(0.002)
layer.close()
"""


@pytest.mark.slow
def test_a_pool_of_processes_with_one_killed_mid_stream_never_duplicates(make_layer, key_prefix):
    """Three processes read one normal channel; one is SIGKILLed while reading. No message arrives twice,
    and nothing is lost but what the killed one had taken (at most the one it was printing)."""
    layer = make_layer(expiry=30, capacity=1000)  # the workers' settings: queue arguments must agree
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _POOL_WORKER, URL, key_prefix], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
        )
        for _ in range(3)
    ]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        total = 600
        for start in range(0, total, 100):
            layer.send_many("pool.work", [{"i": i} for i in range(start, start + 100)])
            if start == 200:
                time.sleep(0.2)
                workers[0].kill()  # SIGKILL: holding a prefetched delivery, maybe mid-take
                workers[0].wait()
        for _ in range(2):
            layer.send("pool.work", {"stop": True})
        outputs = [worker.communicate(timeout=30)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    seen = [int(line) for out in outputs for line in out.split() if line.isdigit()]
    assert outputs[0].split(), "the killed process was not reading yet: the test proves nothing"
    assert max(int(i) for i in outputs[1].split() + outputs[2].split()) >= 500  # the others went on
    assert len(seen) == len(set(seen)), "a message was delivered twice"
    assert set(seen) <= set(range(total))
    assert total - len(seen) <= 1, f"lost {total - len(seen)}: only the killed process's last take may be"


def test_a_group_of_1000_members_gets_one_copy_each_from_one_send(make_layer):
    """800 sockets of 4 processes (`!` queues) and 200 normal channels: one publish, 1,000 deliveries."""
    layer = make_layer()
    members = [f"big{p}!s{i}" for p in range(4) for i in range(200)] + [f"big.plain{i}" for i in range(200)]
    for member in members:
        layer.group_add("big", member)
    assert sorted(layer.group_channels("big")) == sorted(members)
    layer.send_group("big", {"hello": "all"})
    got = []
    queues = [f"big{p}!" for p in range(4)] + [f"big.plain{i}" for i in range(200)]
    while len(got) < 1000:
        batch = layer.receive_batch(queues, 1000, block=True, timeout=2)
        if not batch:
            break
        got += batch
    assert layer.receive_batch(queues, 1000, block=True, timeout=0.2) == []
    assert sorted(channel for channel, _ in got) == sorted(members)
    assert all(message == {"hello": "all"} for _, message in got)


def test_a_full_member_is_skipped_and_the_others_get_theirs(make_layer):
    layer = make_layer(capacity=2)
    for member in ("gf.full", "gf.free", "gfp!a"):
        layer.group_add("gf", member)
    layer.send("gf.full", {"filler": 1})
    layer.send("gf.full", {"filler": 2})
    layer.send_group("gf", {"g": 1})  # no ChannelFull: the broker drops gf.full's copy
    assert layer.receive(["gf.free"]) == ("gf.free", {"g": 1})
    assert layer.receive(["gfp!"]) == ("gfp!a", {"g": 1})
    assert [layer.receive(["gf.full"])[1] for _ in range(3)] == [{"filler": 1}, {"filler": 2}, None]


def test_group_channels_of_two_layers_at_once_both_see_every_member(make_layer):
    """Listing takes each record off the queue for a moment: the group's lock keeps readers from racing."""
    first, second = make_layer(), make_layer()
    for i in range(100):
        first.group_add("gl", f"gl.c{i}")
        first.group_add("gl", f"gl.c{i}")  # duplicates are pruned by the listings
    results = []
    threads = [
        threading.Thread(target=lambda layer=layer: results.append(layer.group_channels("gl")))
        for layer in (first, second, first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 4
    assert all(sorted(r) == sorted(f"gl.c{i}" for i in range(100)) for r in results)


def test_a_single_reader_of_a_normal_channel_gets_it_in_order_while_it_is_being_sent(make_layer):
    """Batches top up with `basic.get` only where no delivery can be on its way: a get must not overtake it."""
    sender, reader = make_layer(capacity=1000), make_layer(capacity=1000)

    def send() -> None:
        for i in range(300):
            sender.send("fifo.plain", {"i": i})
            if i % 10 == 9:
                time.sleep(0.005)  # bursts: the reader often waits, its consumer free, as a burst comes in

    thread = threading.Thread(target=send)
    thread.start()
    got: list[int] = []
    deadline = time.monotonic() + 20
    while len(got) < 300 and time.monotonic() < deadline:
        batch = reader.receive_batch(["fifo.plain", "fifo.other"], 50, block=True, timeout=1)
        got += [message["i"] for _, message in batch]
    thread.join(10)
    assert got == list(range(300))


def test_adding_a_member_again_renews_its_membership_and_listing_does_not(make_layer):
    layer = make_layer(group_expiry=1)
    layer.group_add("renew", "renew.kept")
    layer.group_add("renew", "renew.lapsed")
    time.sleep(0.6)
    layer.group_add("renew", "renew.kept")
    assert sorted(layer.group_channels("renew")) == ["renew.kept", "renew.lapsed"]  # listing renews nothing
    time.sleep(0.6)  # 1.2 s after the first add: only the renewed membership is left
    layer.send_group("renew", {"v": 1})
    assert layer.receive(["renew.kept"]) == ("renew.kept", {"v": 1})
    assert layer.receive(["renew.lapsed"]) == (None, None)
    assert layer.group_channels("renew") == ["renew.kept"]


def test_ordering_across_two_connections_runs_every_message_once_in_order(make_layer):
    """Two layers (two AMQP connections, as two worker processes) race: the state queue's lock is the broker's."""
    layers = [make_layer(), make_layer()]
    reply = "ordx.reply!c"
    assert race_ordered_claims(layers, reply, 30, 30) == list(range(30))
    layers[1].order_forget(reply)
    assert layers[0].order_claim(reply, 0, "c", {}, 10, 10) == "run"  # forgotten: starts again from 0


def test_a_queue_declared_by_another_process_during_a_flush_is_flushed_too(make_layer, key_prefix):
    """A declare registering meanwhile used to be lost with the registry: its queue outlived every flush."""
    other = make_layer()
    other.send("flushed.before", {"n": 0})
    connection = pika.BlockingConnection(connection_parameters(URL, heartbeat=None, connection_name="flush test"))
    channel = connection.channel()

    class DeclaresDuringTheFirstDelete:
        """The real channel; its first queue delete lets the other layer declare (and register) a new queue."""

        def __init__(self) -> None:
            self.interleaved = False

        def __getattr__(self, name):
            return getattr(channel, name)

        def queue_delete(self, queue, **kwargs):
            if not self.interleaved:
                self.interleaved = True
                other.send("declared.during.flush", {"n": 1})
            return channel.queue_delete(queue, **kwargs)

    try:
        flush_prefix(DeclaresDuringTheFirstDelete(), key_prefix, 600)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="NOT_FOUND"):
            channel.queue_declare(key_prefix + "declared.during.flush", passive=True)
    finally:
        connection.close()


def test_jobs_queued_while_the_connection_is_down_wait_for_it_without_recursing(make_layer):
    """During a broker restart a caller found the connection closed with jobs queued and recursed
    (release, take it back, find it closed, release...) until RecursionError reached the sender."""
    receiver = make_layer()._receiver

    class Closed:
        is_open = False

        def add_callback_threadsafe(self, callback):
            pass

    real = receiver._connection
    receiver._connection = Closed()
    receiver._jobs.append((lambda channel: None, None))
    try:
        assert receiver._drive_jobs() is False
        assert not receiver._io_lock.locked()
        receiver._io_lock.acquire()
        receiver._release_io()  # jobs still queued, connection still down: hands them on, no recursion
        assert not receiver._io_lock.locked()
    finally:
        receiver._jobs.clear()
        receiver._connection = real


def test_a_reply_whose_ack_never_reached_the_broker_is_not_returned_twice_after_a_reconnect(make_layer, monkeypatch):
    """A `?` channel's message is returned before the broker confirms its ack (one reader: no round trip).

    If the connection breaks before the broker read that ack, the broker redelivers the message to its
    only reader, this process: the layer must recognise it and drop it, not return it a second time.
    """
    from channels_core.layers.rabbitmq import receiver as receiver_module

    layer = make_layer()
    reply = layer.new_channel("dup.reply?")
    layer.send(reply, {"n": 1})
    layer.send(reply, {"n": 2})
    receiver = layer._receiver
    monkeypatch.setattr(receiver, "_housekeeping", lambda: None)  # its round trip would confirm the acks
    real_settle = receiver_module._settle
    lost: list[list[int]] = []

    def settle(channel, tags):
        if not lost:
            lost.append(tags)  # the first ack is lost on its way, as if the connection broke right after it
            return
        real_settle(channel, tags)

    monkeypatch.setattr(receiver_module, "_settle", settle)
    assert layer.receive([reply], block=True) == (reply, {"n": 1})
    assert lost and receiver._unconfirmed
    receiver._connection._impl._transport._sock.shutdown(socket.SHUT_RDWR)  # the broker requeues 1 and 2
    assert layer.receive([reply], block=True) == (reply, {"n": 2})
    assert layer.receive([reply]) == (None, None)
    assert receiver.reconnects >= 1 and receiver.duplicates_dropped == 1


def test_a_caller_whose_job_was_handed_over_drives_its_next_calls_itself(make_layer):
    """After the I/O thread ran a caller's job it leaves the connection to callers again: otherwise every
    later receive went through the I/O thread too, a thread hand-off each (seen as 0.1x raw pika)."""
    layer = make_layer()
    receiver = layer._receiver
    layer.send("handoff.test", {})
    assert layer.receive(["handoff.test"], block=True)[0] == "handoff.test"
    time.sleep(0.2)  # the I/O thread has taken the connection back and sleeps in select
    drivers = []
    real_take = receiver._take

    def take(*args):
        drivers.append(threading.current_thread() is receiver._thread)
        return real_take(*args)

    receiver._take = take
    for _ in range(6):
        layer.receive(["handoff.test"])
    assert drivers.count(False) >= 4, drivers


def _eventually(read, expected, timeout: float = 4.0):
    deadline = time.monotonic() + timeout
    while True:
        got = read()
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_statistics_add_up_every_process_and_a_flush_starts_them_again(make_layer):
    """Two layers, two connections, two stats books: each reads the other's counts from its snapshot queue."""
    one, two = make_layer(capacity=3), make_layer(capacity=3)
    for _ in range(3):
        one.send("sx.test", {})  # the first is published at once, the others by a timer a second later
    with pytest.raises(ChannelFull):
        two.send("sx.test", {})
    two.send("sx.reply?abc", {})
    two.send("sx.reply?def", {})
    everyone = {"messages_count": 5, "channel_full_count": 1}
    assert _eventually(two.global_statistics, everyone) == everyone
    assert _eventually(one.global_statistics, everyone) == everyone
    assert two.global_statistics() == everyone  # reading put every snapshot back
    assert one.channel_statistics("sx.test") == {"messages_count": 3, "channel_full_count": 1, "messages_pending": 3}
    assert one.channel_statistics("sx.reply?zzz")["messages_count"] == 2  # reply channels count under "sx.reply?"
    assert one.channel_statistics("sx.never")["messages_pending"] == 0
    two.flush()
    assert two.global_statistics() == {"messages_count": 0, "channel_full_count": 0}
    one.send("sx.after", {})  # counted, then lost: its snapshot finds the queue gone and starts from zero
    time.sleep(1.5)
    one.send("sx.after", {})
    one.send("sx.after", {})
    after = {"messages_count": 2, "channel_full_count": 0}
    assert _eventually(two.global_statistics, after) == after


def test_a_statistics_snapshot_that_fails_never_fails_the_send_that_was_made(make_layer, monkeypatch, caplog):
    """The counts go out after the message did: raising then would make a caller send it again."""
    layer = make_layer()

    def broken(channel):
        raise LayerConnectionError("the snapshot could not be published")

    monkeypatch.setattr(layer._stats, "publish", broken)
    layer.send("sf.test", {"n": 1})  # the first send's snapshot is due at once
    assert layer.receive(["sf.test"], block=True) == ("sf.test", {"n": 1})
    assert "Could not publish this process's statistics" in caplog.text
