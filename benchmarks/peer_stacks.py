"""The stacks the peer benchmarks start, all serving `benchmarks/peerapp` (peers_bench.py, shootout_bench.py).

- `OursStack`: `python -m interface_server peerapp.asgi:channel_layer` + 2 `runworker --prefetch 4`
  over Redis, from this interpreter (the consumers run in the workers: every message crosses the layer);
- `Daphne`: daphne 4 serving Channels 4 consumers with channels_redis, from the peer venv (one process:
  the consumers run inside the server);
- `GunicornPeer`: gunicorn with 2 sync workers serving the same Django views, from the peer venv.

Each is a `Side` of e2e_bench.py (a port and the pids whose CPU is read), started as a harness `Child`
so it is stopped (and its log removed) by `harness.execute`. `node_client` runs the shootout's load
generator and yields its JSON events as they come, with the server's CPU read around each step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import peer_env
from e2e_bench import WORKER_ARGS, WORKERS, Side, redis_pid
from harness import BENCH_DIR, ROOT, Child, Run, free_port

from channels_core.test.processes import ChildProcess, child_pids, cpu_seconds

START_TIMEOUT = 60.0
CLIENT_JS = BENCH_DIR / "shootout" / "client.mjs"


def peer_env_vars(redis_url: str, prefix: str, stack: str, root: Path = ROOT) -> dict[str, str]:
    """The environment every process of a stack gets: the app, its Redis, its key prefix.

    `root`: the checkout of the project its processes import (another one to compare with this, fanout_bench.py).
    """
    path = os.pathsep.join([str(root), str(BENCH_DIR), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # The processes run in ROOT: `python -m` would put it first on sys.path, ahead of another `root`.
    safe = {"PYTHONSAFEPATH": "1"} if Path(root).resolve() != ROOT else {}
    return dict(
        os.environ,
        **safe,
        PYTHONPATH=path,
        DJANGO_SETTINGS_MODULE="peerapp.settings",
        PEERAPP_STACK=stack,
        PEERAPP_REDIS_URL=redis_url,
        PEERAPP_PREFIX=prefix,
    )


class OursStack(Side):
    """interface-server + runworkers over Redis: every WebSocket message is consumed in a worker process."""

    name = "ours"

    def __init__(
        self, run: Run, prefix: str, workers: int = WORKERS, server_args: Sequence[str] = (), root: Path = ROOT
    ) -> None:
        env = peer_env_vars(run.args.redis_url, prefix, "ours", root)
        self.port = free_port()
        argv = [sys.executable, "-m", "interface_server", "peerapp.asgi:channel_layer", "-p", str(self.port), "-v", "0"]
        argv += server_args  # e.g. --processes 2 (processes_bench.py)
        self.server = Child(run, "interface-server", argv, env)
        self.workers = [
            Child(run, f"runworker-{i + 1}", [sys.executable, "-m", "django", "runworker", *WORKER_ARGS], env)
            for i in range(workers)
        ]
        self.server.wait_for_port(self.port, timeout=START_TIMEOUT)
        for worker in self.workers:
            worker.wait_for("Listening on channels", START_TIMEOUT)

    def describe(self) -> str:
        return (
            f"interface-server pid {self.server.pid} + {len(self.workers)} runworker {' '.join(WORKER_ARGS)}"
            f" (pids {', '.join(str(w.pid) for w in self.workers)}), port {self.port}"
        )

    def processes(self) -> dict[str, int]:
        # With --processes N the parent only supervises: its children serve.
        group = {f"interface-server {i + 1}": pid for i, pid in enumerate(sorted(child_pids(self.server.pid)))}
        return {"interface-server": self.server.pid, **group, **{w.label: w.pid for w in self.workers}}

    def stop(self) -> None:
        for child in [self.server, *self.workers]:
            child.stop()


class Daphne(Side):
    """daphne 4 + Channels 4 async consumers + channels_redis, one process, from the peer venv."""

    name = "channels4"

    def __init__(self, run: Run, prefix: str) -> None:
        env = peer_env_vars(run.args.redis_url, prefix, "channels4")
        self.port = free_port()
        argv = [str(peer_env.python()), "-m", "daphne", "-v", "0", "-b", "127.0.0.1", "-p", str(self.port)]
        self.server = Child(run, "daphne", [*argv, "peerapp.channels4:application"], env)
        self.server.wait_for_port(self.port, timeout=START_TIMEOUT)

    def describe(self) -> str:
        return f"daphne pid {self.server.pid} (Channels 4 async consumers, channels_redis), port {self.port}"

    def processes(self) -> dict[str, int]:
        return {"daphne": self.server.pid}

    def stop(self) -> None:
        self.server.stop()


class GunicornPeer(Side):
    """gunicorn, 2 sync workers, serving the app's Django views, from the peer venv."""

    name = "gunicorn"

    def __init__(self, run: Run, prefix: str, workers: int = WORKERS) -> None:
        env = peer_env_vars(run.args.redis_url, prefix, "ours")  # the views are the same on either setting
        self.port = free_port()
        argv = [str(peer_env.python()), "-m", "gunicorn", "-w", str(workers), "-k", "sync"]
        argv += ["-b", f"127.0.0.1:{self.port}", "--log-level", "warning", "--no-control-socket"]
        self.master = Child(run, "gunicorn", [*argv, "peerapp.wsgi:application"], env)
        self.master.wait_for_port(self.port, timeout=START_TIMEOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while len(child_pids(self.master.pid)) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not boot {workers} workers:\n{self.master.output()}")
            time.sleep(0.05)

    def describe(self) -> str:
        return f"gunicorn -w {WORKERS} -k sync, master pid {self.master.pid}, port {self.port}"

    def processes(self) -> dict[str, int]:
        found = {"gunicorn master": self.master.pid}
        for i, pid in enumerate(sorted(child_pids(self.master.pid))):
            found[f"gunicorn worker {i + 1}"] = pid
        return found

    def stop(self) -> None:
        self.master.stop()


class PrivateRedis:
    """A redis-server of the benchmark's own on a free port (no persistence), stopped at the end.

    On a machine others share, their tests' pauses, flushes and load on the shared Redis would
    otherwise land in the figures (a channels_redis read timing out closes Channels 4's sockets),
    and its CPU would not be the benchmark's alone.
    """

    def __init__(self) -> None:
        self.port = free_port()
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.child = ChildProcess(argv, label="private redis-server", cwd=ROOT, own_group=True, die_with_parent=True)
        self.child.wait_for_port(self.port, timeout=START_TIMEOUT)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.child.stop()
        self.child.close()


def start_redis(args) -> PrivateRedis | None:
    """With `--private-redis`, start one and point `args.redis_url` at it."""
    if not getattr(args, "private_redis", False):
        return None
    server = PrivateRedis()
    args.redis_url = server.url
    return server


def teardown(client, private: PrivateRedis | None) -> None:
    client.close()
    if private is not None:
        private.stop()


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each labelled process still alive."""
    return {label: t for label, pid in pids.items() if (t := cpu_seconds(pid)) is not None}


def node_client(side: Side, run: Run, options: dict[str, object], timeout: float) -> Iterator[dict]:
    """Run the shootout load generator against `side`'s /shootout/ and yield its events as they arrive.

    Each "step" event gets `serverCpu` (seconds per server process over its sampling phase, Redis
    included when local), `sampleWall` (seconds, read here) and `loadgenCpuPct`/`serverCpuPct`.
    """
    node = peer_env.ensure_node()
    argv = [node, str(CLIENT_JS), "--url", f"ws://127.0.0.1:{side.port}/shootout/"]
    for key, value in options.items():
        argv += [f"--{key}", str(value)]
    pids = dict(side.processes())
    redis_server = redis_pid(run.client)
    if redis_server is not None:
        pids["redis-server"] = redis_server
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    before: dict[str, float] = {}
    began = 0.0
    try:
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "sampling":
                before, began = cpu_of(pids), time.perf_counter()
            elif event["event"] == "step":
                wall = time.perf_counter() - began
                after = cpu_of(pids)
                event["serverCpu"] = {k: after[k] - before[k] for k in after if k in before}
                event["sampleWall"] = wall
                serving = sum(v for k, v in event["serverCpu"].items() if k != "redis-server")
                event["serverCpuPct"] = serving / wall * 100 if wall else 0.0
                # One interface-server process is single-threaded: its own share shows when it is the limit.
                top = max((k for k in event["serverCpu"] if k != "redis-server"), key=event["serverCpu"].get)
                event["busiest"] = {"process": top, "cpuPct": event["serverCpu"][top] / wall * 100 if wall else 0.0}
                # CPU per message delivered does not depend on the scheduler's share on a busy machine.
                delivered = event["broadcasts"] * event["clients"] - event["missing"] + event["rtt"]["n"]
                event["busiest"]["usPerMessage"] = event["serverCpu"][top] / max(delivered, 1) * 1e6
                event["delivered"] = delivered
                event["serverUsPerMessage"] = serving / max(delivered, 1) * 1e6
                event["redisCpuPct"] = event["serverCpu"].get("redis-server", 0.0) / wall * 100 if wall else 0.0
                event["loadgenCpuPct"] = event["loadgenCpu"] / event["sampleSeconds"] * 100
            yield event
            if time.monotonic() > deadline:
                raise TimeoutError(f"the load generator ran past {timeout:.0f} s")
        proc.wait(timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"the load generator exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def tree_state() -> str:
    """The commit measured, and whether the work tree had uncommitted changes (other work in progress)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "not a git checkout"
    changed = len(dirty.stdout.splitlines())
    return f"commit {head.stdout.strip()}" + (f" + uncommitted changes in {changed} files" if changed else "")


def write_results(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")


def plot(kind: str, results_path: Path, out_dir: Path) -> list[Path]:
    """Draw `kind`'s charts from a results file with matplotlib in the peer venv; the PNGs written."""
    argv = [str(peer_env.python()), str(BENCH_DIR / "peer_plots.py"), kind, str(results_path), str(out_dir)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"plotting failed: {out.stderr[-2000:]}")
    return [Path(line) for line in out.stdout.split()]
