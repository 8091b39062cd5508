"""The channel layers side by side: each layer, its broker's raw floor, and a full stack on it.

Used by layer_bench.py (all layers in one run), ipc_bench.py and e2e_bench.py.
A *transport* is anything with `send(channel, n)`, `recv(channel) -> n | None`
and `close()`: a layer (`LayerTransport`) or the cheapest raw client of the
same broker doing the same job (`RawRedis`: RPUSH + BLPOP; `RawQueue`: a
POSIX message queue, `mq_send` + `mq_receive`; `RawPika`: `basic_publish` +
a consumer with `auto_ack`). RabbitMQ also gets `RawPikaSame`, raw pika with
the guarantees the layer gives (`raw-rabbitmq-same`): every publish confirmed,
manual acks each confirmed by a `basic.qos` round trip; the floor does less
than the contract allows (no `ChannelFull`, duplicates possible), so the
layer is measured against both. Every transport of one run lives under the
run's prefix; `cleanup` removes what any of them left.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("redis", "ipc", "rabbitmq", "inmemory")
SHARED = ("redis", "ipc", "rabbitmq")  # layers that cross processes (in-memory does not)
RAW = {"redis": "redis-py RPUSH+BLPOP", "ipc": "posix_ipc mq_send+mq_receive", "rabbitmq": "pika publish+consume"}
ROUND = 10  # messages sent, then received, per round: a POSIX message queue holds 10 by default
TP_CHANNEL = "bench.tp"
PING, PONG = "bench.ping", "bench.pong"
PAYLOAD = "x" * 88  # with the sequence number: about 100 bytes serialized
BLOCK = 5.0  # seconds a blocking read waits
ECHO_IDLE = 6  # empty blocking reads before an orphaned echo process gives up
WARMUP = 20


@dataclass(frozen=True)
class Brokers:
    """Where the brokers are, and the run's prefix (letters, digits, '-' and '_': valid for every layer)."""

    redis_url: str
    amqp_url: str
    prefix: str

    def layer_url(self, kind: str) -> str:
        """The `CHANNEL_LAYER_URL` of `kind` (see channels_core.layers.layer_url)."""
        return {"redis": self.redis_url, "ipc": "ipc://", "rabbitmq": self.amqp_url}[kind]  # ipc: prefix option

    def layer_prefix(self, kind: str, suffix: str = "") -> str:
        return self.prefix + suffix + (":" if kind in ("redis", "rabbitmq") else "")


def default_amqp_url() -> str:
    return os.environ.get("RABBITMQ_URL") or os.environ.get("CLOUDAMQP_URL") or "amqp://guest:guest@127.0.0.1:5672/%2F"


def make_layer(kind: str, brokers: Brokers, suffix: str = "", options: dict | None = None):
    """A layer of `kind` under the run's prefix, by default with room for a whole benchmark round."""
    options = {"capacity": 100_000, "expiry": 60} if options is None else options
    if kind == "inmemory":
        from channels_core.layers import InMemoryChannelLayer

        return InMemoryChannelLayer(**options)
    from channels_core.layers.layer_url import from_url

    return from_url(brokers.layer_url(kind), prefix=brokers.layer_prefix(kind, suffix), **options)


# -- transports ------------------------------------------------------------------------------


class LayerTransport:
    """A layer's `send` and blocking `receive` of a message carrying a sequence number."""

    def __init__(self, kind: str, brokers: Brokers) -> None:
        self.layer = make_layer(kind, brokers)

    def send(self, channel: str, n: int) -> None:
        self.layer.send(channel, {"n": n, "text": PAYLOAD})

    def recv(self, channel: str) -> int | None:
        _, message = self.layer.receive([channel], block=True)
        return None if message is None else message["n"]

    def close(self) -> None:
        self.layer.close()


class RawRedis:
    """redis-py RPUSH and BLPOP of the bare bytes: Redis's floor."""

    def __init__(self, brokers: Brokers) -> None:
        import redis

        self.client = redis.Redis.from_url(brokers.redis_url)
        self.prefix = brokers.prefix + ":raw:"
        self.payload = PAYLOAD.encode()

    def send(self, channel: str, n: int) -> None:
        self.client.rpush(self.prefix + channel, n.to_bytes(8, "big", signed=True) + self.payload)

    def recv(self, channel: str) -> int | None:
        got = self.client.blpop([self.prefix + channel], timeout=BLOCK)
        return None if got is None else int.from_bytes(got[1][:8], "big", signed=True)

    def close(self) -> None:
        self.client.close()

    def unlink(self) -> None:
        keys = list(self.client.scan_iter(match=self.prefix + "*", count=1000))
        if keys:
            self.client.unlink(*keys)


class RawQueue:
    """posix_ipc message queues, one per channel: the floor of any queue between two processes."""

    def __init__(self, brokers: Brokers) -> None:
        self.prefix = brokers.prefix + "raw"
        self.queues: dict = {}
        self.payload = PAYLOAD.encode()

    def _queue(self, channel: str):
        import posix_ipc

        if channel not in self.queues:
            self.queues[channel] = posix_ipc.MessageQueue(f"/{self.prefix}.{channel}", posix_ipc.O_CREAT)
        return self.queues[channel]

    def send(self, channel: str, n: int) -> None:
        self._queue(channel).send(n.to_bytes(8, "big", signed=True) + self.payload)

    def recv(self, channel: str) -> int | None:
        import posix_ipc

        try:
            data, _ = self._queue(channel).receive(BLOCK)
        except posix_ipc.BusyError:
            return None
        return int.from_bytes(data[:8], "big", signed=True)

    def close(self) -> None:
        for queue in self.queues.values():
            queue.close()

    def unlink(self) -> None:
        import posix_ipc

        for channel in (TP_CHANNEL, PING, PONG):
            with contextlib.suppress(posix_ipc.ExistentialError):
                posix_ipc.unlink_message_queue(f"/{self.prefix}.{channel}")


class RawPika:
    """pika `basic_publish` on a plain channel and a consumer with `auto_ack`: RabbitMQ's floor."""

    def __init__(self, brokers: Brokers) -> None:
        import pika

        self.connection = pika.BlockingConnection(pika.URLParameters(brokers.amqp_url))
        self.channel = self.connection.channel()
        self.prefix = brokers.prefix + ":raw:"
        self.payload = PAYLOAD.encode()
        self.consumers: dict[str, Iterator] = {}
        self.declared: set[str] = set()

    def _declare(self, channel: str) -> str:
        queue = self.prefix + channel
        if queue not in self.declared:
            self.channel.queue_declare(queue, arguments={"x-expires": 600_000})  # gone 10 min after its last use
            self.declared.add(queue)
        return queue

    def send(self, channel: str, n: int) -> None:
        self.channel.basic_publish("", self._declare(channel), n.to_bytes(8, "big", signed=True) + self.payload)

    def recv(self, channel: str) -> int | None:
        if channel not in self.consumers:
            self.consumers[channel] = self.channel.consume(
                self._declare(channel), auto_ack=True, inactivity_timeout=BLOCK
            )
        _, _, body = next(self.consumers[channel])
        return None if body is None else int.from_bytes(body[:8], "big", signed=True)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.consumers:
                self.channel.cancel()
            self.connection.close()

    def unlink(self) -> None:
        for channel in (TP_CHANNEL, PING, PONG):
            with contextlib.suppress(Exception):
                self.channel.queue_delete(self.prefix + channel)


class RawPikaSame(RawPika):
    """Raw pika with the layer's guarantees: confirmed publishes, manual acks confirmed before use.

    What the RabbitMQ layer's contract costs at the least: a publish must
    be confirmed before `send` returns (that is how `ChannelFull` is
    known), and a normal channel's message may be used only once the broker
    has its ack (at most once: the layer confirms it with a `basic.qos`).
    """

    def __init__(self, brokers: Brokers) -> None:
        super().__init__(brokers)
        self.prefix = brokers.prefix + ":rawsame:"
        self.channel.confirm_delivery()
        self.channel.basic_qos(prefetch_count=1)  # as the layer's prefetch_normal

    def recv(self, channel: str) -> int | None:
        if channel not in self.consumers:
            self.consumers[channel] = self.channel.consume(self._declare(channel), inactivity_timeout=BLOCK)
        method, _, body = next(self.consumers[channel])
        if body is None:
            return None
        self.channel.basic_ack(method.delivery_tag)
        self.channel.basic_qos(prefetch_count=1)  # its reply: the broker has the ack
        return int.from_bytes(body[:8], "big", signed=True)


RAW_TRANSPORTS = {"redis": RawRedis, "ipc": RawQueue, "rabbitmq": RawPika, "rabbitmq-same": RawPikaSame}


def transport(name: str, brokers: Brokers):
    """`redis`, `ipc`, `rabbitmq`, `inmemory` (a layer) or `raw-<kind>` (its broker's floor)."""
    if name.startswith("raw-"):
        return RAW_TRANSPORTS[name[4:]](brokers)
    return LayerTransport(name, brokers)


def cleanup(kinds: list[str], brokers: Brokers) -> None:
    """Remove everything the run's layers and raw clients left on their brokers and in /dev/shm."""
    for kind in kinds:
        if kind == "inmemory":
            continue
        for suffix in ("", "echo"):
            with contextlib.suppress(Exception):
                layer = make_layer(kind, brokers, suffix)
                layer.flush()
                layer.close()
        for raw_kind in [kind] + ([f"{kind}-same"] if f"{kind}-same" in RAW_TRANSPORTS else []):
            with contextlib.suppress(Exception):
                raw = RAW_TRANSPORTS[raw_kind](brokers)
                raw.unlink()
                raw.close()


# -- measurements ------------------------------------------------------------------------------


def send_receive(name: str, each, rounds: int) -> float:
    """Seconds `each` takes to send then receive `rounds` rounds of `ROUND` messages."""
    start = time.perf_counter()
    for _ in range(rounds):
        for i in range(ROUND):
            each.send(TP_CHANNEL, i)
        for i in range(ROUND):
            got = each.recv(TP_CHANNEL)
            if got != i:
                raise RuntimeError(f"{name}: message {i} came back as {got!r}")
    return time.perf_counter() - start


def pings(name: str, each, count: int, spacing: float) -> list[float]:
    """`count` one-way times (ping-pong round trip / 2) against the echo process of `each`'s broker."""
    got = []
    for n in range(1, count + 1):
        time.sleep(spacing)  # the echo side is parked in its blocking receive
        start = time.perf_counter()
        each.send(PING, n)
        if each.recv(PONG) != n:
            raise RuntimeError(f"{name}: ping {n} lost")
        got.append((time.perf_counter() - start) / 2)
    return got


def echo(name: str, brokers: Brokers) -> None:
    """The echo process: send every ping back as a pong until a negative one (or a long silence)."""
    each = transport(name, brokers)
    idle = 0
    try:
        while idle < ECHO_IDLE:
            n = each.recv(PING)
            if n is None:
                idle += 1
                continue
            if n < 0:
                break
            idle = 0
            each.send(PONG, n)
    finally:
        each.close()


def bench_process(name: str, brokers: Brokers, conn) -> None:
    """A process measuring one transport on request (so no client's threads slow another's calls).

    Requests on `conn`: `("rounds", n)` -> seconds of `send_receive`; `("echo", None)` -> starts an
    echo process and answers once it echoes; `("pings", (n, spacing))` -> one-way times; `("stop", None)`.
    """
    each = transport(name, brokers)
    partner = None
    try:
        while True:
            request, arg = conn.recv()
            if request == "stop":
                break
            if request == "rounds":
                conn.send(send_receive(name, each, arg))
            elif request == "echo":
                process = multiprocessing.get_context("spawn").Process(target=echo, args=(name, brokers), daemon=True)
                process.start()
                partner = process
                each.send(PING, 0)  # waits in the queue while the echo process starts
                answered = any(each.recv(PONG) == 0 for _ in range(ECHO_IDLE))
                if answered:
                    pings(name, each, WARMUP, 0.001)  # warm-up, not counted
                conn.send(answered)
            elif request == "pings":
                conn.send(pings(name, each, *arg))
    finally:
        if partner is not None:
            with contextlib.suppress(Exception):
                each.send(PING, -1)
            partner.join(10)
            if partner.is_alive():
                partner.terminate()
        each.close()


@contextlib.contextmanager
def bench_processes(names: list[str], brokers: Brokers) -> Iterator[dict]:
    """One `bench_process` per transport name; yields name -> its end of the pipe."""
    spawn = multiprocessing.get_context("spawn")
    conns, processes = {}, []
    try:
        for name in names:
            mine, theirs = spawn.Pipe()
            # Not a daemon, as it starts the echo process; it ends when this end of its pipe closes.
            process = spawn.Process(target=bench_process, args=(name, brokers, theirs))
            process.start()
            processes.append(process)
            conns[name] = mine
        yield conns
    finally:
        for conn in conns.values():
            with contextlib.suppress(Exception):
                conn.send(("stop", None))
        for process in processes:
            process.join(15)
            if process.is_alive():
                process.terminate()


def ask(conns: dict, request: str, arg) -> dict:
    """Send `request` to every bench process in turn, each waiting for the one before; their answers."""
    answers = {}
    for name, conn in conns.items():
        conn.send((request, arg))
        if not conn.poll(120):
            raise RuntimeError(f"{name}: no answer to {request!r} in 120 s")
        answers[name] = conn.recv()
    return answers


def throughput(names: list[str], brokers: Brokers, messages: int) -> dict[str, float]:
    """Messages per second of `send` then blocking `recv`, in rounds of `ROUND`, each transport in its own
    process, taking turns chunk by chunk so load on the machine hits all alike."""
    chunks = max(messages // ROUND // 10, 1)
    spent = dict.fromkeys(names, 0.0)
    with bench_processes(names, brokers) as conns:
        ask(conns, "rounds", 1)  # connections opened, queues declared
        for _ in range(chunks):
            for name, seconds in ask(conns, "rounds", 10).items():
                spent[name] += seconds
    return {name: chunks * 10 * ROUND / took for name, took in spent.items()}


def latency(names: list[str], brokers: Brokers, samples: int, spacing: float = 0.001) -> dict[str, list[float]]:
    """One-way send->receive seconds (ping-pong round trip / 2) against an echo process, taking turns."""
    got: dict[str, list[float]] = {name: [] for name in names}
    with bench_processes(names, brokers) as conns:
        for name, answered in ask(conns, "echo", None).items():
            if not answered:
                raise RuntimeError(f"{name}: the echo process never answered")
        for _ in range(max(samples // 10, 1)):
            for name, times in ask(conns, "pings", (10, spacing)).items():
                got[name] += times
    return got


# -- a full stack on a layer -----------------------------------------------------------------------

STACK_SETTINGS = """
import os

from channels_core.layers.layer_url import settings_from_url
from tests.project.settings import *  # noqa

CHANNEL_LAYERS = {
    "default": settings_from_url(
        os.environ["BENCH_LAYER_URL"],
        routing="tests.project.routing.channel_routing",
        prefix=os.environ["BENCH_LAYER_PREFIX"],
    ),
}
"""


def stack_env(kind: str, brokers: Brokers, tmpdir: str, suffix: str = "echo") -> dict[str, str]:
    """The environment of an interface-server and runworkers of the test project on `kind`'s layer.

    Redis uses the project's own settings (its default configuration); the
    other layers a settings module in `tmpdir` that picks the layer by URL.
    """
    settings = Path(tmpdir, "benchlayer_settings.py")
    if not settings.exists():
        settings.write_text(STACK_SETTINGS)
    pythonpath = os.pathsep.join([tmpdir, str(ROOT), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=pythonpath.rstrip(os.pathsep))
    env.setdefault("TEST_DB_PATH", os.path.join(tmpdir, "db.sqlite3"))
    prefix = brokers.layer_prefix(kind, suffix)
    if kind == "redis":
        env.update(DJANGO_SETTINGS_MODULE="tests.project.settings", TEST_REDIS_URL=brokers.redis_url)
        env.update(TEST_LAYER_PREFIX=prefix)
    else:
        env.update(DJANGO_SETTINGS_MODULE="benchlayer_settings", BENCH_LAYER_PREFIX=prefix)
        env.update(BENCH_LAYER_URL=brokers.layer_url(kind), TEST_LAYER_PREFIX=prefix)
    return env


@contextlib.contextmanager
def stack(kind: str, brokers: Brokers, tmpdir: str, workers: int = 1, worker_args: tuple = ()) -> Iterator[int]:
    """An interface-server and `workers` runworkers of the test project on `kind`'s layer; yields the port."""
    from channels_core.test.processes import ChildProcess, free_port

    env = stack_env(kind, brokers, tmpdir)
    port = free_port()
    command = [sys.executable, "-m", "interface_server", "tests.project.asgi:channel_layer", "-p", str(port)]
    children = [ChildProcess([*command, "-v", "0"], label=f"interface-server-{kind}", cwd=ROOT, env=env)]
    for i in range(workers):
        argv = [sys.executable, "-m", "django", "runworker", *worker_args]
        children.append(ChildProcess(argv, label=f"worker-{kind}-{i}", cwd=ROOT, env=env))
    try:
        children[0].wait_for_port(port, timeout=30)
        for worker in children[1:]:
            worker.wait_for("Listening on channels", 30)
        yield port
    finally:
        for child in children:
            child.stop()
            child.close()


STACK_WORKERS = 2
STACK_WORKER_ARGS = ("--prefetch", "4")  # as e2e_bench.py: a fast view, up to 4 waiting requests per read
WRK_CONNECTIONS = 50


@dataclass
class StackFigures:
    echo: dict[str, list[float]]  # layer -> WebSocket echo round trips (seconds)
    http: dict[str, list[float]]  # layer -> requests per second of each wrk run (empty without wrk)


def through_stacks(kinds: list[str], brokers: Brokers, samples: int, http_seconds: int) -> StackFigures:
    """The test project served on each layer (an interface-server, `STACK_WORKERS` runworkers), taking turns.

    WebSocket echo round trips, 1 client, sequential 100-byte messages, the stacks taking turns message
    by message; then `GET /` with `wrk -t2 -c50` for `http_seconds`, twice per stack in alternating order
    (skipped when wrk is not installed).
    """
    import shutil
    import tempfile

    from harness import http_get, run_wrk
    from websockets.sync.client import connect

    figures = StackFigures({kind: [] for kind in kinds}, {})
    with tempfile.TemporaryDirectory() as tmpdir, contextlib.ExitStack() as stacks:
        ports, sockets = {}, {}
        for kind in kinds:
            ports[kind] = stacks.enter_context(stack(kind, brokers, tmpdir, STACK_WORKERS, STACK_WORKER_ARGS))
            url = f"ws://127.0.0.1:{ports[kind]}/ws/echo/"
            sockets[kind] = stacks.enter_context(connect(url, compression=None, proxy=None, open_timeout=30))
        text = "x" * 100
        for n in range(samples + WARMUP):
            for kind, ws in sockets.items():
                start = time.perf_counter()
                ws.send(text)
                if ws.recv(timeout=10) != text:
                    raise RuntimeError(f"{kind}: the echo differs")
                if n >= WARMUP:
                    figures.echo[kind].append(time.perf_counter() - start)
        if not shutil.which("wrk") or http_seconds <= 0:
            return figures
        for kind in kinds:
            if http_get(ports[kind])[:2] != (200, b"OK"):
                raise RuntimeError(f"{kind}: GET / did not answer 200 OK")
            run_wrk(ports[kind], 1, 2, WRK_CONNECTIONS, echo=False)  # warm-up
            figures.http[kind] = []
        for turn in range(2):
            for kind in kinds if turn == 0 else kinds[::-1]:
                result = run_wrk(ports[kind], http_seconds, 2, WRK_CONNECTIONS, echo=False)
                if result["bad"]:
                    raise RuntimeError(f"{kind}: {result['bad']} errors or non-2xx answers to GET /")
                figures.http[kind].append(result["rate"])
    return figures
