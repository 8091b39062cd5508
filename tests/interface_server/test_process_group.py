"""`interface-server --processes N` (process_group.py): real processes on one real port, the test plays the worker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from channels_core.test.processes import alive, free_port
from tests.support.waiting import wait_for

from .harness import ROOT, http_request, layer_env
from .ws_support import Worker, close_code, drain, send_retry, wait_closed, ws_connect

TTL = 1.5


class GroupWorker(Worker):
    """`ws_support.Worker` (accepts, echoes), and also answers each `http.request` with its reply channel."""

    def run(self) -> None:
        channels = ["http.request", "websocket.connect", "websocket.receive", "websocket.disconnect"]
        try:
            while not self.stopping.is_set():
                for channel, message in self.layer.receive_batch(channels, 100, block=True):
                    if channel == "http.request":
                        send_retry(
                            self.layer,
                            message["reply_channel"],
                            {"status": 200, "content": message["reply_channel"].encode()},
                        )
                    else:
                        self.handle(channel, message)
        except BaseException as exc:
            self.errors.append(exc)


def _prefix(reply_channel: str) -> str:
    return reply_channel[: reply_channel.index("!") + 1]


def _group_holders(layer, parent_pid: int, count: int, timeout: float = 15.0) -> dict[str, int]:
    """Wait until `count` children of `parent_pid` hold a lease; `{reply prefix: pid}`."""

    def holders() -> dict[str, int]:
        found = {}
        for holder, info in layer.lease_holders().items():
            pid = info.get("pid")
            if info.get("kind") == "interface-server" and pid and alive(pid) and _ppid(pid) == parent_pid:
                found[holder] = pid
        return found

    assert wait_for(lambda: len(holders()) >= count, timeout), layer.lease_holders()
    return holders()


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _open_many(url: str, n: int) -> list:
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda _: ws_connect(url), range(n)))


def test_two_processes_serve_http_and_websockets_on_one_port_from_PORT(start_server, worker_layer):
    port = free_port()
    server = start_server(
        "--processes",
        "2",
        "--lease-ttl",
        str(TTL),
        "--metrics-port",
        "0",
        env={"PORT": str(port)},  # as Heroku gives it
        listen=False,
        port=port,
        wait_for=f"Process group listening on tcp 127.0.0.1:{port} for 2 processes",
    )
    children = _group_holders(worker_layer, server.process.pid, 2)
    assert len(set(children.values())) == 2
    with GroupWorker(worker_layer, echo=True) as worker:
        bodies = []
        with ThreadPoolExecutor(max_workers=8) as pool:
            for reply in pool.map(lambda i: http_request(port, path=f"/{i}"), range(40)):
                assert reply.status == 200
                bodies.append(reply.body.decode())
        http_by_child = {prefix: sum(_prefix(b) == prefix for b in bodies) for prefix in children}
        assert sum(http_by_child.values()) == 40 and all(http_by_child.values()), http_by_child

        # Fallback sessions live in one process: a group serves none, and the prefix goes to the application.
        assert http_request(port, path="/_channels/sse").body.decode().startswith("interface.response.")
        assert "the fallback transports (sse, poll) are off" in server.output()

        sockets = _open_many(server.ws_url + "/", 20)
        for i, ws in enumerate(sockets):
            ws.send(f"echo {i}")
        assert [ws.recv(timeout=5) for ws in sockets] == [f"echo {i}" for i in range(20)]
        ws_by_child = {
            prefix: sum(_prefix(m["reply_channel"]) == prefix for m in worker.connects) for prefix in children
        }
        assert sum(ws_by_child.values()) == 20 and all(ws_by_child.values()), ws_by_child

        # One /metrics for the group: the sums of both children's counts.
        match = re.search(
            r"Metrics on http://127\.0\.0\.1:(\d+)/metrics \(and /healthz, /readyz\), summed", server.output()
        )
        assert match, server.output()
        text = urllib.request.urlopen(f"http://127.0.0.1:{match.group(1)}/metrics", timeout=10).read().decode()
        assert "channels_interface_processes 2.0" in text
        assert 'channels_interface_http_responses_total{code="200"} 41.0' in text
        assert 'channels_interface_connections{type="websocket"} 20.0' in text
        ready = urllib.request.urlopen(f"http://127.0.0.1:{match.group(1)}/readyz", timeout=10)
        assert ready.status == 200
        for ws in sockets:
            ws.close()


def test_a_killed_child_is_replaced_and_its_sockets_disconnects_are_sent_by_the_sweeper(start_server, worker_layer):
    server = start_server("--processes", "2", "--lease-ttl", str(TTL), wait_for="Process group listening")
    children = _group_holders(worker_layer, server.process.pid, 2)
    with GroupWorker(worker_layer, echo=True) as worker:
        sockets = _open_many(server.ws_url + "/", 16)
        victim_prefix, victim = next(iter(children.items()))
        on_victim = [m["reply_channel"] for m in worker.connects if _prefix(m["reply_channel"]) == victim_prefix]
        assert on_victim, worker.connects
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: "died (signal SIGKILL)" in server.output(), 5), server.output()
        replaced = _group_holders(worker_layer, server.process.pid, 2)
        assert victim not in replaced.values() and len(replaced) == 2, replaced
        # The dead child's lease expires; the sweeper sends its sockets' disconnects (1006), each once.
        swept: list[str] = []
        deadline = time.monotonic() + TTL + 5
        while not swept and time.monotonic() < deadline:
            swept = worker_layer.lease_sweep("test-sweeper", 5)
            time.sleep(0.1)
        assert swept == [victim_prefix]
        assert wait_for(lambda: len(worker.disconnects) >= len(on_victim), 5)
        time.sleep(0.3)
        assert sorted((m["reply_channel"], m["code"]) for m in worker.disconnects) == sorted(
            (rc, 1006) for rc in on_victim
        )
        # New connections reach both the survivor and the replacement.
        for ws in sockets:
            ws.close_timeout = 1  # the killed child's sockets were reset: do not wait for a close frame
        more = _open_many(server.ws_url + "/", 20)
        prefixes = {_prefix(m["reply_channel"]) for m in worker.connects[16:]}
        assert set(replaced) <= prefixes, (prefixes, replaced)
        for ws in more:
            ws.send("again")
            assert ws.recv(timeout=5) == "again"
        for ws in sockets + more:
            ws.close()


def test_sigterm_drains_every_child_gracefully(start_server, worker_layer):
    server = start_server("--processes", "2", "--lease-ttl", str(TTL), wait_for="Process group listening")
    children = _group_holders(worker_layer, server.process.pid, 2)
    with GroupWorker(worker_layer, echo=True) as worker:
        sockets = _open_many(server.ws_url + "/", 12)
        assert {_prefix(m["reply_channel"]) for m in worker.connects} == set(children)
        codes = []
        closer = threading.Thread(target=lambda: codes.extend(close_code(wait_closed(ws, 10)[1]) for ws in sockets))
        closer.start()
        assert server.terminate(timeout=30) == 0
        closer.join(15)
        assert codes == [1001] * 12
        assert wait_for(lambda: len(worker.disconnects) == 12, 5), worker.disconnects
        assert {m["code"] for m in worker.disconnects} == {1001}
    assert not any(alive(pid) for pid in children.values())
    assert not set(children) & set(worker_layer.lease_holders())  # leases ended, not left to expire
    assert drain(worker_layer, "websocket.disconnect") == []
    assert f"Process group {server.process.pid} stopped" in server.output()


def test_unix_socket_is_shared_too(start_server, worker_layer, tmp_path):
    path = str(tmp_path / "group.sock")
    server = start_server("--processes", "2", "--unix-socket", path, wait_for="Process group listening on unix")
    _group_holders(worker_layer, server.process.pid, 2)
    with GroupWorker(worker_layer, echo=True):
        out = subprocess.run(
            ["curl", "-s", "--unix-socket", path, "http://x/a"], capture_output=True, text=True, timeout=10
        )
        assert out.stdout.startswith("interface.response.")
    assert server.terminate(timeout=30) == 0
    assert not os.path.exists(path)


def test_an_inherited_fd_is_shared_by_the_group(start_server, worker_layer):
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port, fd = listener.getsockname()[1], listener.fileno()
        server = start_server(
            "--processes", "2", "--fd", str(fd), pass_fds=(fd,), port=port, wait_for="Process group listening on fd"
        )
    _group_holders(worker_layer, server.process.pid, 2)
    with GroupWorker(worker_layer, echo=True):
        replies = [http_request(port, path=f"/{i}") for i in range(5)]
    assert all(r.status == 200 and r.body.startswith(b"interface.response.") for r in replies)


def _run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "interface_server", "tests.interface_server.layers:redis_layer", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **layer_env("procs-cli:"), **(env or {})},
    )


def test_what_a_group_cannot_do_exits_2_with_one_line():
    cases = {
        ("--processes", "2", "--endpoint", "tcp:0"): "--endpoint cannot be used with --processes",
        ("--processes", "0"): "--processes must be 1 to 256",
        ("--processes", "x"): "--processes: invalid int value",
    }
    for args, message in cases.items():
        result = _run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("interface-server: error: ") and message in lines[0], (
            args,
            result.stderr,
        )


def test_a_taken_port_exits_1_before_any_child_starts():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = _run_cli("--processes", "2", "-p", str(taken.getsockname()[1]))
    assert result.returncode == 1, result.stderr
    assert "Cannot listen" in result.stderr and "started interface-server process" not in result.stderr
