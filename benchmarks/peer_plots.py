"""Charts of the peer benchmarks' results files (run with the peer venv's python, which has matplotlib).

    $PEERS_VENV/bin/python benchmarks/peer_plots.py peers|shootout RESULTS.json OUT_DIR

`peers` (from peers_bench.py) writes peers_http.png (requests/s and p50/p99 by concurrent
clients, ours beside gunicorn) and peers_latency.png (WebSocket echo and broadcast latency
percentiles, ours beside Channels 4); `shootout` (from shootout_bench.py) writes shootout.png
(p95 round trip and the last client's p95 by client count, each stack). Prints the paths written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"ours": "#1f77b4", "gunicorn": "#ff7f0e", "channels4": "#2ca02c"}
LABELS = {"ours": "ours (interface-server + 2 workers)", "gunicorn": "gunicorn -w 2 sync", "channels4": "Channels 4"}


def subtitle(results: dict) -> str:
    v = results.get("versions", {})
    peers = ", ".join(f"{k} {v[k]}" for k in ("gunicorn", "channels", "daphne", "channels_redis") if k in v)
    load = f" (load average {results['load']:.1f})" if "load" in results else ""
    return f"{results.get('date', '')}, noisy shared 2-core box{load}; {peers}"


def peers_charts(results: dict, out: Path) -> list[Path]:
    written = []
    http = results.get("http")
    if http:
        cpu = results.get("http_cpu_per_request")
        fig, axes = plt.subplots(1, 3 if cpu else 2, figsize=(14 if cpu else 10, 4))
        left, right = axes[0], axes[1]
        for name, runs in http.items():
            xs = [r["connections"] for r in runs]
            left.plot(xs, [r["rate"] for r in runs], "o-", color=COLORS[name], label=LABELS[name])
            right.plot(xs, [r["p50"] * 1e3 for r in runs], "o-", color=COLORS[name], label=f"{name} p50")
            right.plot(xs, [r["p99"] * 1e3 for r in runs], "s--", color=COLORS[name], label=f"{name} p99")
        left.set(title="HTTP GET / (Django view), wrk", xlabel="concurrent clients", ylabel="requests/s")
        right.set(title="HTTP latency", xlabel="concurrent clients", ylabel="ms")
        left.set_ylim(bottom=0)
        right.set_ylim(bottom=0)
        left.legend(fontsize=8)
        right.legend(fontsize=7)
        if cpu:
            # What each side would serve per fully busy CPU: unlike req/s on a busy machine, this does not
            # depend on how the scheduler shared the cores between 4 processes (ours) and 2 (gunicorn).
            names = list(cpu)
            bars = axes[2].bar(
                [LABELS[n] for n in names], [1 / cpu[n] for n in names], color=[COLORS[n] for n in names]
            )
            axes[2].bar_label(bars, fmt=lambda v: f"{v:,.0f}", fontsize=8)
            axes[2].set(title="req/s per fully busy CPU, at 50 clients", ylabel="1 / serving CPU per request")
            axes[2].tick_params(axis="x", labelsize=7)
        fig.suptitle(subtitle(results), fontsize=8)
        fig.tight_layout()
        written.append(save(fig, out / "peers_http.png"))
    panels = [key for key in ("echo", "broadcast") if key in results]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
        for ax, key in zip(axes[0], panels, strict=True):
            data = results[key]
            pcts = data["percentiles"]
            width = 0.8 / len(data["stacks"])
            for i, (name, values) in enumerate(data["stacks"].items()):
                xs = [j + i * width for j in range(len(pcts))]
                bars = ax.bar(xs, [values[p] * 1e3 for p in pcts], width, color=COLORS[name], label=LABELS[name])
                ax.bar_label(bars, fmt=lambda v: f"{v:,.0f}" if v >= 100 else f"{v:.3g}", fontsize=7)
            ax.set_xticks([j + width * (len(data["stacks"]) - 1) / 2 for j in range(len(pcts))], pcts)
            ax.set(title=data["title"], ylabel="ms")
            ax.set_ylim(top=ax.get_ylim()[1] * 1.15)  # room for the legend above the bars
            ax.legend(fontsize=8)
        fig.suptitle(subtitle(results), fontsize=8)
        fig.tight_layout()
        written.append(save(fig, out / "peers_latency.png"))
    return written


def shootout_chart(results: dict, out: Path) -> list[Path]:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, result in results["stacks"].items():
        steps = result["steps"]
        xs = [s["clients"] for s in steps]
        left.plot(xs, [s["rtt"]["p95"] for s in steps], "o-", color=COLORS[name], label=LABELS[name])
        right.plot(xs, [s["last"]["p95"] for s in steps], "o-", color=COLORS[name], label=LABELS[name])
    left.axhline(500, color="grey", linestyle=":", label="500 ms limit")
    left.set(title="shootout broadcast: sender's RTT p95", xlabel="clients", ylabel="ms")
    right.set(title="time until the LAST client has it, p95 (log scale)", xlabel="clients", ylabel="ms")
    right.set_yscale("log")  # the stacks differ by 10-50x here
    left.set_ylim(bottom=0)
    for ax in (left, right):
        ax.legend(fontsize=8)
    fig.suptitle(subtitle(results), fontsize=8)
    fig.tight_layout()
    return [save(fig, out / "shootout.png")]


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> None:
    kind, results_path, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    results = json.loads(results_path.read_text())
    written = peers_charts(results, out) if kind == "peers" else shootout_chart(results, out)
    print("\n".join(str(p) for p in written))


if __name__ == "__main__":
    main()
