"""The peer benchmarks' `--quick` runs: benchmarks/peers_bench.py and benchmarks/shootout_bench.py.

Each run installs (or reuses) the peers' venv from PyPI and Node's `ws` from npm, serves the same
app on our stack and on the peers (gunicorn, Channels 4 + daphne 4 + channels_redis), and must
print each figure beside its peer with the ratio, lose no broadcast on our stack, write its
results file and draw its charts. No skip: a machine that cannot reach PyPI or npm fails here.

Slow (the first run installs the peers; each starts servers, wrk and hundreds of WebSockets) and
alone (they load both cores, which would turn other tests' timings into noise). A last test shows
that without a reachable index the install raises with pip's words rather than skipping.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_quick(script: str, tmp_path: Path) -> tuple[str, dict]:
    out = tmp_path / "results.json"
    argv = [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--plot"]
    argv += ["--plot-dir", str(tmp_path), "--out", str(out), "--private-redis"]  # no other test's keys or pauses
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    text = done.stdout + done.stderr
    assert done.returncode == 0, text[-4000:]
    return text, json.loads(out.read_text())


def ratio_line(text: str, measure: str) -> re.Match:
    """The final table's row for `measure`: ours, the peer's figure and the ratio, all present."""
    found = re.search(rf"^{re.escape(measure)}\s+(\S.*?)\s{{2,}}(\S.*?)\s{{2,}}(\d+\.\d\d)\b", text, re.M)
    assert found, f"no row with a ratio for {measure!r} in:\n{text[-3000:]}"
    return found


@pytest.mark.slow
@pytest.mark.alone
def test_peers_bench_quick_prints_each_figure_beside_its_peer(tmp_path):
    text, results = run_quick("peers_bench.py", tmp_path)
    for measure in (
        "HTTP req/s at 50 clients (vs gunicorn)",
        "HTTP p99 at 50 clients (vs gunicorn)",
        "WS echo RTT p50 (vs Channels 4)",
        "WS echo RTT p99 (vs Channels 4)",
        "broadcast to last of 200 p99 (vs Channels 4)",
        "broadcast server CPU per message delivered (vs Channels 4)",
        "HTTP req/s per fully busy CPU at 50 clients (vs gunicorn)",
    ):
        ratio_line(text, measure)
    assert results["versions"]["gunicorn"] and results["versions"]["channels"].startswith("4.")
    assert results["versions"]["daphne"].startswith("4.")
    assert {r["connections"] for r in results["http"]["ours"]} == {50}
    assert all(r["rate"] > 0 and r["bad"] == 0 for side in results["http"].values() for r in side)
    assert set(results["echo"]["stacks"]) == {"ours", "channels4"}
    steps = results["broadcast"]["steps"]
    assert steps["ours"]["clients"] == 200 and steps["ours"]["missing"] == 0 and steps["ours"]["extra"] == 0
    assert steps["channels4"]["clients"] == 200
    assert all(s["loadgenCpuPct"] >= 0 and s["serverCpuPct"] > 0 for s in steps.values())
    for png in ("peers_http.png", "peers_latency.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.alone
def test_shootout_bench_quick_steps_both_stacks_and_loses_no_broadcast(tmp_path):
    text, results = run_quick("shootout_bench.py", tmp_path)
    ours, peer = results["stacks"]["ours"], results["stacks"]["channels4"]
    assert [s["clients"] for s in ours["steps"]] == [100, 200, 300][: len(ours["steps"])]
    assert ours["steps"] and peer["steps"]
    assert sum(s["missing"] + s["extra"] for s in ours["steps"]) == 0
    assert all(s["broadcasts"] == 20 and s["rtt"]["n"] == 20 for s in ours["steps"])
    assert ours["done"]["maxClients"] >= 100, ours["done"]
    assert "shootout clients at p95 <= 500 ms, ours" in text
    ratio_line(text, "shootout server CPU per message delivered at 100 clients (vs Channels 4)")
    if peer["done"]["maxClients"]:
        ratio_line(text, "shootout clients at p95 <= 500 ms (vs Channels 4)")
    assert (tmp_path / "shootout.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # creates a venv: ~15 s on this box
def test_peer_venv_install_fails_loudly_without_an_index(tmp_path, monkeypatch):
    """No registry: `ensure_venv` raises with pip's own words instead of letting a benchmark skip its peers."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import peer_env

    monkeypatch.setattr(peer_env, "VENV", tmp_path / "venv")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no configured index or local wheel directory
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # the discard port: refused at once
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(peer_env.PeerEnvError, match=r"is PyPI reachable\?[\s\S]*gunicorn"):
        peer_env.ensure_venv(quiet=True)
    assert not (tmp_path / "venv" / "requirements.sha256").exists()  # the next run tries again
