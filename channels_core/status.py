"""What an operator sees: one snapshot of a channel layer, for `manage.py channels_status` and the admin page.

`collect_status(layer)` asks the layer (never Django, never Twisted) and
returns a plain, JSON-ready dict. Each section comes from one extension of
the layer contract (`channels_core.layers.contract`); a section the layer
cannot give is `None`: its extension is not listed, or reading it failed
and `errors` says why, so a page can always show the rest.

The dict (every key always present)::

    {
      "time": 1796612345.12,            # unix time the snapshot was taken
      "elapsed": 0.012,                 # seconds collect_status took
      "layer": "default: <RedisChannelLayer hosts=[redis://h:6379/0] prefix='asgi:'>",  # no passwords
      "queues": [                       # None without the `inspection` extension
        {"channel": "http.request",     # queue name ("server!" for a process's channels)
         "pending": 3,                  # messages waiting (a group send to N sockets of one process is 1)
         "oldest_age": 0.25,            # seconds the oldest waiting message has waited
         "capacity": 100},              # the queue's capacity
        ...                             # fullest first, at most `limit`
      ],
      "groups": [                       # None without `inspection`
        {"group": "chat-lobby", "members": 1200},   # live members; largest first, at most `limit`
        ...
      ],
      "processes": [                    # None without the `leases` extension
        {"holder": "interface.response.AbC!",   # the lease's name
         "kind": "interface-server",    # or "worker" (anything else a holder published)
         "pid": 4242, "host": "web-1",
         "version": "0.1.0",            # channels_core version of that process (None if it did not say)
         "started": 1796610000.0,       # unix time it started (None if it did not say)
         "uptime": 2345.1,              # time - started (None if unknown)
         "load": {"http": 3, "websocket": 9800},  # worker: {"threads": 8, "handled": 12345, "busy": 2}
         "channels": [...],             # worker: the channels it listens on ([] for others)
         "dropped": {"send_timeouts": 2},   # that process's own drop counters (non-zero ones)
         "info": {...}},                # everything the holder published, as is
        ...                             # interface servers first, then workers, then by holder
      ],
      "dropped": {
        "channel_full": 17,             # sends refused (or group members skipped) because a channel was full
                                        # (`global_statistics()`; None without `statistics`)
        "messages_sent": 123456,        # messages_count of global_statistics (None without `statistics`)
        "by_process": {"worker.1.ab": {"invalid": 1}, ...},   # non-zero drop counters per live process
        "total": 20,                    # channel_full + every per-process drop counter
      },
      "errors": {"queues": "LayerConnectionError: ..."},   # section -> what went wrong; {} when all went well
    }

Counters of processes that ended are gone with their leases; `channel_full`
lives in the layer (on Redis a day after the last increment).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .layers.contract import supports

DEFAULT_LIMIT = 1000
"""Queues and groups listed at most (the fullest and largest)."""

_KIND_ORDER = {"interface-server": 0, "worker": 1}


def collect_status(layer: Any, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """A snapshot of `layer` for operators: queues, groups, live processes, drops (see the module docstring).

    `layer` is a channel layer or a `ChannelLayerWrapper` (`channel_layers[alias]`).
    Never raises for a failing layer: the failing section is left empty and
    its error is in `errors`.
    """
    started = time.monotonic()
    now = time.time()
    errors: dict[str, str] = {}
    status: dict[str, Any] = {
        "time": now,
        "elapsed": 0.0,
        "layer": describe(layer),
        "queues": None,
        "groups": None,
        "processes": None,
        "dropped": {"channel_full": None, "messages_sent": None, "by_process": {}, "total": 0},
        "errors": errors,
    }
    asks: dict[str, Any] = {}
    if supports(layer, "inspection"):
        asks["queues"] = lambda: [dict(q) for q in layer.inspect_queues(limit)]
        asks["groups"] = lambda: [dict(g) for g in layer.inspect_groups(limit)]
    if supports(layer, "leases"):
        asks["processes"] = layer.lease_holders
    if supports(layer, "statistics"):
        asks["statistics"] = layer.global_statistics
    # The questions go out together: each mostly waits on the network (on Redis, a few round trips per
    # server), so the snapshot costs the longest of them rather than their sum.
    with ThreadPoolExecutor(len(asks) or 1, thread_name_prefix="collect-status") as pool:
        futures = {name: pool.submit(_section, errors, name, ask) for name, ask in asks.items()}
        answers = {name: future.result() for name, future in futures.items()}
    status["queues"] = answers.get("queues")
    status["groups"] = answers.get("groups")
    holders = answers.get("processes")
    status["processes"] = None if holders is None else processes(holders, now)
    dropped = status["dropped"]
    if "statistics" in answers:
        stats = answers["statistics"]
        if stats is not None:
            dropped["channel_full"] = int(stats.get("channel_full_count", 0))
            dropped["messages_sent"] = int(stats.get("messages_count", 0))
    for process in status["processes"] or ():
        if process["dropped"]:
            dropped["by_process"][process["holder"]] = dict(process["dropped"])
    dropped["total"] = (dropped["channel_full"] or 0) + sum(
        n for counters in dropped["by_process"].values() for n in counters.values()
    )
    status["elapsed"] = time.monotonic() - started
    return status


def describe(layer: Any) -> str:
    """The layer for a title: its alias (for a `ChannelLayerWrapper`) and its repr (hosts without passwords)."""
    inner = getattr(layer, "channel_layer", None)
    alias = getattr(layer, "alias", None)
    if inner is not None and alias is not None:
        return f"{alias}: {inner!r}"
    return repr(layer)


def processes(holders: dict[str, Any], now: float) -> list[dict[str, Any]]:
    """The `processes` section from `lease_holders()`: one normalised entry per live holder.

    Tolerates any info a holder published (older releases published only
    kind, pid, host and connections).
    """
    out = []
    for holder, info in holders.items():
        info = info if isinstance(info, dict) else {}
        started = _number(info.get("started"))
        load = info.get("load")
        if not isinstance(load, dict):
            # Before load was standardised an interface server published only its connection count.
            load = {"connections": info["connections"]} if isinstance(info.get("connections"), int) else {}
        dropped = info.get("dropped")
        out.append(
            {
                "holder": holder,
                "kind": str(info.get("kind") or "unknown"),
                "pid": info.get("pid"),
                "host": info.get("host"),
                "version": info.get("version"),
                "started": started,
                "uptime": None if started is None else max(0.0, now - started),
                "load": {str(k): v for k, v in load.items()},
                "channels": list(info.get("channels") or ()),
                "dropped": {str(k): int(v) for k, v in dropped.items() if _number(v)}
                if isinstance(dropped, dict)
                else {},
                "info": info,
            }
        )
    out.sort(key=lambda p: (_KIND_ORDER.get(p["kind"], 2), p["kind"], p["host"] or "", p["holder"]))
    return out


def _section(errors: dict[str, str], name: str, fetch: Any) -> Any:
    try:
        return fetch()
    except Exception as exc:  # an operator's view shows what it can, and says what failed
        errors[name] = f"{type(exc).__name__}: {exc}"
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


# -- text rendering (`manage.py channels_status`) ------------------------------


def render_text(status: dict[str, Any], rows: int = 20, collected: int | None = None) -> str:
    """`status` (from `collect_status`) as readable tables, at most `rows` queues and groups each.

    `collected`: the `limit` `status` was collected with; a list that long is counted as "N or more".
    """
    lines = [f"Channel layer {status['layer']}"]
    lines.append(
        time.strftime("at %Y-%m-%d %H:%M:%S UTC", time.gmtime(status["time"]))
        + f" (collected in {status['elapsed'] * 1000:.0f} ms)"
    )
    processes = status["processes"]
    lines.append("")
    if processes is None:
        lines.append("Processes: " + _missing(status, "processes", "leases"))
    else:
        lines.append(f"Processes: {len(processes)} live")
        table = [
            [
                p["kind"],
                p["holder"],
                p["host"] or "?",
                str(p["pid"] or "?"),
                p["version"] or "?",
                _duration(p["uptime"]),
                _load(p),
            ]
            for p in processes
        ]
        lines += _table(["KIND", "HOLDER", "HOST", "PID", "VERSION", "UPTIME", "LOAD"], table)
    for name, title, header, cells in (
        (
            "queues",
            "Queues with messages waiting (fullest first)",
            ["CHANNEL", "PENDING", "CAPACITY", "OLDEST"],
            lambda q: [q["channel"], str(q["pending"]), str(q["capacity"]), _duration(q["oldest_age"], fine=True)],
        ),
        (
            "groups",
            "Groups with live members (largest first)",
            ["GROUP", "MEMBERS"],
            lambda g: [g["group"], str(g["members"])],
        ),
    ):
        items = status[name]
        lines.append("")
        if items is None:
            lines.append(f"{title.split(' ')[0]}: " + _missing(status, name, "inspection"))
            continue
        shown = items[: max(0, rows)]
        more = f", showing {len(shown)}" if len(shown) < len(items) else ""
        count = f"{len(items)} or more" if collected is not None and len(items) >= collected > 0 else len(items)
        lines.append(f"{title}: {count}{more}")
        lines += _table(header, [cells(item) for item in shown])
    dropped = status["dropped"]
    lines.append("")
    if dropped["channel_full"] is None:
        lines.append("Dropped: sends to full channels not counted (the layer has no statistics)")
    else:
        lines.append(
            f"Dropped: {dropped['channel_full']} sends to full channels (of {dropped['messages_sent']} messages sent)"
        )
    for holder, counters in sorted(dropped["by_process"].items()):
        lines.append(f"  {holder}: " + ", ".join(f"{name} {n}" for name, n in sorted(counters.items())))
    for section, error in sorted(status["errors"].items()):
        lines.append(f"ERROR reading {section}: {error}")
    return "\n".join(lines)


def _missing(status: dict[str, Any], section: str, extension: str) -> str:
    if section in status["errors"]:
        return "could not be read (see the ERROR below)"
    return f"not available (the layer has no {extension} extension)"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["  (none)"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]
    ]


def _load(process: dict[str, Any]) -> str:
    load = process["load"]
    if process["kind"] == "worker" and "threads" in load:
        return f"{load['threads']} threads, {load.get('busy', 0)} busy, {load.get('handled', 0)} handled"
    return ", ".join(f"{name} {value}" for name, value in load.items()) or "-"


def _duration(seconds: float | None, fine: bool = False) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.2f}s" if fine else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"
