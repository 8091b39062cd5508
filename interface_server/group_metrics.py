"""`--processes N --metrics-port P`: the group's parent serves one `/metrics`, `/healthz` and `/readyz`.

Each child serves its own metrics (`metrics_server`, read in its reactor
at scrape time, as without `--processes`) on a private port of 127.0.0.1,
written to the group's status directory (`process_group_cli.write_status`).
A scrape of the parent's port scrapes every live child and sums what they
report, family by family:

- counters and histograms: summed; the last values scraped from a child
  that ended stay in the sums (so totals never go back when a child is
  replaced; what it counted after the last scrape is lost);
- gauges: summed (open connections, send backlog, memory), except
  `channels_interface_layer_available` and `process_start_time_seconds` /
  `process_max_fds` (the lowest) and `python_info` (one copy);
- the group's own: `channels_interface_processes` (children alive),
  `channels_interface_processes_scraped` (children that answered this
  scrape) and `channels_interface_process_restarts_total`.

`/readyz` is 200 when at least one child answers its own `/readyz` with 200
(the group still serves), and lists the children that do not.

The parent has no reactor: the port is served by a stdlib HTTP server
from daemon threads.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from .process_group import read_statuses

logger = logging.getLogger("interface_server.group")

SCRAPE_TIMEOUT = 2.0
"""Seconds a child has to answer the parent's scrape (its reactor may be busy)."""

_LOWEST = {"channels_interface_layer_available", "process_start_time_seconds", "process_max_fds"}
_ONE_COPY = {"python_info"}
_KEPT = {"counter", "histogram", "summary"}  # what stays in the sums after a child ends

Key = tuple[str, tuple[tuple[str, str], ...]]


class _Family:
    __slots__ = ("documentation", "type", "values")

    def __init__(self, type_: str, documentation: str) -> None:
        self.type = type_
        self.documentation = documentation
        self.values: dict[Key, float] = {}


def merge(scrapes: list[str], departed: dict[str, _Family] | None = None) -> dict[str, _Family]:
    """Sum the exposition texts `scrapes` family by family (the module docstring says how each is combined)."""
    out: dict[str, _Family] = {}
    for name, family in (departed or {}).items():
        copy = out[name] = _Family(family.type, family.documentation)
        copy.values.update(family.values)
    for text in scrapes:
        for family in text_string_to_metric_families(text):
            target = out.setdefault(family.name, _Family(family.type, family.documentation))
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                old = target.values.get(key)
                if old is None:
                    target.values[key] = sample.value
                elif family.name in _LOWEST:
                    target.values[key] = min(old, sample.value)
                elif family.name not in _ONE_COPY:
                    target.values[key] = old + sample.value
    return out


class GroupMonitor:
    """The group's metrics port: scrapes the children listed in `status_dir` and serves their sum."""

    def __init__(self, host: str, port: int, status_dir: Path) -> None:
        self.status_dir = status_dir
        self.group: Any = None
        self._lock = threading.Lock()
        self._last: dict[int, dict[str, _Family]] = {}  # pid -> its last scrape's counters and histograms
        self._departed: dict[str, _Family] = {}
        handler = type("_Handler", (_Handler,), {"monitor": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)  # bound now: a taken port fails before forking
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- the group's calls ---------------------------------------------------------------------

    def start(self, group: Any) -> None:
        self.group = group
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="group-metrics", daemon=True)
        self._thread.start()
        host, port = self.httpd.server_address[:2]
        logger.info("Metrics on http://%s:%d/metrics (and /healthz, /readyz), summed over the group", host, port)

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self.httpd.server_close()

    def close_in_child(self) -> None:
        """A forked child must not hold the parent's listening socket."""
        with contextlib.suppress(OSError):
            self.httpd.socket.close()

    def child_started(self, slot: int, pid: int) -> None:
        pass

    def child_exited(self, slot: int, pid: int) -> None:
        with self._lock:
            last = self._last.pop(pid, None)
            if last:
                self._departed = merge([], _combine(self._departed, last))

    # -- scraping ------------------------------------------------------------------------------

    def _children(self) -> list[dict]:
        """Status of each live child that has reported its ports."""
        live = set(self.group.pids()) if self.group is not None else set()
        return [s for s in read_statuses(self.status_dir).values() if s.get("pid") in live]

    def metrics(self) -> bytes:
        scrapes, pids = [], []
        for status in self._children():
            text = _get(status.get("metrics_port"), "/metrics")
            if text is not None:
                scrapes.append(text[1])
                pids.append(status["pid"])
        with self._lock:
            for pid, text in zip(pids, scrapes, strict=True):
                self._last[pid] = {n: f for n, f in merge([text]).items() if f.type in _KEPT}
            families = merge(scrapes, self._departed)
        group = self.group
        extra = [
            ("channels_interface_processes", "gauge", "Interface-server processes of this group alive.", {}),
            ("channels_interface_processes_scraped", "gauge", "Processes that answered this scrape.", {}),
            ("channels_interface_process_restarts", "counter", "Processes replaced after they died.", {}),
        ]
        registry = CollectorRegistry(auto_describe=False)
        metrics = []
        for name, family in sorted(families.items()):
            metric = Metric(name, family.documentation, family.type)
            for (sample_name, labels), value in family.values.items():
                metric.add_sample(sample_name, dict(labels), value)
            metrics.append(metric)
        for name, type_, doc, labels in extra:
            metric = Metric(name, doc, type_)
            value = {
                "channels_interface_processes": len(group.pids()) if group else 0,
                "channels_interface_processes_scraped": len(scrapes),
                "channels_interface_process_restarts": group.restarts if group else 0,
            }[name]
            metric.add_sample(name + ("_total" if type_ == "counter" else ""), labels, value)
            metrics.append(metric)
        registry.register(_Fixed(metrics))
        return generate_latest(registry)

    def readiness(self) -> str | None:
        """None when at least one child is ready, else why none is."""
        children = self._children()
        if not children:
            return "no interface-server process has started yet"
        problems = []
        for status in children:
            answer = _get(status.get("metrics_port"), "/readyz")
            if answer is not None and answer[0] == 200:
                return None
            reason = "no answer" if answer is None else answer[1].strip()
            problems.append(f"process {status['pid']} (slot {status['slot']}): {reason}")
        return "; ".join(problems)


def _combine(a: dict[str, _Family], b: dict[str, _Family]) -> dict[str, _Family]:
    out = dict(a)
    for name, family in b.items():
        if name in out:
            merged = _Family(family.type, family.documentation)
            merged.values = dict(out[name].values)
            for key, value in family.values.items():
                merged.values[key] = merged.values.get(key, 0.0) + value
            out[name] = merged
        else:
            out[name] = family
    return out


def _get(port: int | None, path: str) -> tuple[int, str] | None:
    """`(status, body)` of a child's page, or None if it did not answer."""
    if not port:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=SCRAPE_TIMEOUT) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except OSError:
        return None


class _Fixed:
    """A collector that yields metrics built already."""

    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> list[Metric]:
        return self._metrics


class _Handler(BaseHTTPRequestHandler):
    monitor: GroupMonitor

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._answer(200, self.monitor.metrics(), "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/healthz":
            self._answer(200, b"ok\n")
        elif path == "/readyz":
            problem = self.monitor.readiness()
            if problem is None:
                self._answer(200, b"ready\n")
            else:
                self._answer(503, f"not ready: {problem}\n".encode())
        elif path == "/":
            self._answer(200, b"/metrics /healthz /readyz\n")
        else:
            self._answer(404, b"not found\n")

    def _answer(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not worth a log line each
        pass
