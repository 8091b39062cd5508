"""The peers' environments: a venv with gunicorn, Channels 4, daphne 4, channels_redis and matplotlib, and Node's `ws`.

    python benchmarks/peer_env.py          # install (or check) both, print where they are

The venv (`~/.cache/channels-core-benchmarks/venv-peers`, or `$PEERS_VENV`; outside the work tree
so every clone on the machine shares it) is made with `--system-site-packages`: the
peers get their own packages from PyPI (pinned in `peers-requirements.txt`), and share Django,
Twisted, redis-py and asgiref with this interpreter, so both sides of a comparison run the same
framework versions. It is reused while the requirements file is unchanged (its hash is kept in
the venv) and rebuilt when it changes. The load generator of the shootout is Node's `ws`,
installed by npm into `benchmarks/shootout/node_modules` (git-ignored), likewise reused.

Nothing here skips quietly: when PyPI or the npm registry cannot be reached, `PeerEnvError`
says so with pip's or npm's own output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# Outside the work tree by default, so a fresh clone (CI's) reuses the venv of the last run on this machine.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "channels-core-benchmarks"
VENV = Path(os.environ.get("PEERS_VENV") or CACHE / "venv-peers")
REQUIREMENTS = BENCH_DIR / "peers-requirements.txt"
NODE_DIR = BENCH_DIR / "shootout"
INSTALL_TIMEOUT = 900  # seconds: a cold install of matplotlib and daphne's TLS extras on a busy box


class PeerEnvError(RuntimeError):
    """The peers could not be installed: the benchmark cannot compare, so it stops."""


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    h.update(f"{sys.executable} {sys.version}".encode())  # a venv belongs to one interpreter
    return h.hexdigest()


def _run(argv: list[str], what: str, cwd: Path | None = None) -> None:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerEnvError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise PeerEnvError(f"{what} failed (exit {done.returncode}):\n{tail}")


def python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv(quiet: bool = False) -> Path:
    """The peer venv's python, installing or refreshing the venv first when needed."""
    stamp = VENV / "requirements.sha256"
    wanted = _digest(REQUIREMENTS)
    if python().exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python()
    if not quiet:
        print(f"Installing the peers into {VENV} from PyPI ({REQUIREMENTS.name}); this takes a minute", flush=True)
    shutil.rmtree(VENV, ignore_errors=True)
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(VENV)], "creating the peer venv")
    _run(
        [str(python()), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", str(REQUIREMENTS)],
        f"pip install -r {REQUIREMENTS.name} (is PyPI reachable?)",
    )
    stamp.write_text(wanted + "\n")
    return python()


def versions() -> dict[str, str]:
    """The peers' versions as the venv reports them (and Django's, which both sides share)."""
    code = (
        "import json, importlib.metadata as m\n"
        "print(json.dumps({n: m.version(n) for n in"
        " ('gunicorn', 'channels', 'daphne', 'channels_redis', 'Django', 'Twisted', 'matplotlib')}))"
    )
    out = subprocess.run([str(python()), "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def ensure_node(quiet: bool = False) -> str:
    """Install Node's `ws` into benchmarks/shootout/node_modules when needed; returns the `node` executable."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise PeerEnvError("node and npm are needed for the shootout's load generator (apt-get install nodejs npm)")
    stamp = NODE_DIR / "node_modules" / ".package.sha256"
    wanted = _digest(NODE_DIR / "package.json")
    if stamp.exists() and stamp.read_text().strip() == wanted and (NODE_DIR / "node_modules" / "ws").is_dir():
        return node
    if not quiet:
        print(f"Installing Node's ws into {NODE_DIR / 'node_modules'} from the npm registry", flush=True)
    _run(
        [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "--loglevel", "error"],
        "npm install (is the npm registry reachable?)",
        cwd=NODE_DIR,
    )
    stamp.write_text(wanted + "\n")
    return node


if __name__ == "__main__":
    print(f"peer venv: {ensure_venv()}  {versions()}")
    print(f"node: {ensure_node()}  ws in {NODE_DIR / 'node_modules'}")
