"""`/metrics`, `/healthz` and `/readyz` for workers: a small threaded HTTP server and the readiness rules.

`runworker --metrics-port N` serves, on `--metrics-host` (127.0.0.1 by default):

- `/metrics`: the Prometheus text format (`worker.metrics`);
- `/healthz`: 200 while the process runs (liveness);
- `/readyz`: 200 `ready` when the worker takes messages, 503 `not ready: <reason>` otherwise:
  the layer does not answer a ping, the worker's reads from the layer fail,
  no worker thread has come back to the layer for `STALE_AFTER` seconds (all
  stuck in consumers), or it is shutting down.

The readiness of one worker process (`worker_problem`) is read from the
attributes its loop keeps (`last_receive`, `failing_since`, `in_job`,
`termed`), so a probe costs the worker nothing; the layer ping is one round
trip per probe. A pool's parent combines its children's (`worker.metrics_pool`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger("worker")

STALE_AFTER = 10.0
"""Seconds without any thread coming back to the layer after which a worker is not ready.

An idle worker's read returns every `WAKE_INTERVAL` (0.5 s); a busy one
after each consumer. Only a worker whose every thread is in a consumer for
this long (or stuck) passes it.
"""

CONTENT_TYPE_TEXT = "text/plain; charset=utf-8"


def worker_threads(worker: Any) -> list[Any]:
    """The `Worker` objects of a process: the worker itself plus a `WorkerGroup`'s extra threads."""
    return [worker, *getattr(worker, "workers", ())]


def worker_problem(worker: Any, stale_after: float = STALE_AFTER, now: float | None = None) -> str | None:
    """Why `worker` (a `Worker`, `WorkerGroup` or `SweepingWorker`) does not take messages now, or None."""
    now = time.monotonic() if now is None else now
    if getattr(worker, "termed", False):
        return "shutting down"
    threads = worker_threads(worker)
    failing = [t for t in threads if t.failing_since is not None]
    if failing:
        oldest = min(t.failing_since for t in failing)
        return f"reading from the channel layer fails for {now - oldest:.1f}s ({failing[0].receive_error})"
    receives = [t.last_receive for t in threads if t.last_receive is not None]
    if not receives:
        return "the worker loop has not read from the channel layer yet"
    age = now - max(receives)
    if age > stale_after:
        busy = sum(1 for t in threads if t.in_job)
        return (
            f"no worker thread has read from the channel layer for {age:.1f}s "
            f"({busy} of {len(threads)} busy in consumers)"
        )
    return None


def layer_problem(layer: Any) -> str | None:
    """None if the layer answers its `ping()` (a layer without one counts as reachable), else why not."""
    ping = getattr(layer, "ping", None)
    if ping is None:
        return None
    try:
        ping()
    except Exception as exc:
        return f"the channel layer is unreachable ({type(exc).__name__}: {exc})"
    return None


class HealthServer:
    """`/metrics`, `/healthz`, `/readyz` on `host:port` from daemon threads (port 0: any free port).

    `metrics()` returns `(content type, body)`; `ready()` returns None when
    ready, else the reason (sent with a 503).
    """

    def __init__(
        self,
        host: str,
        port: int,
        metrics: Callable[[], tuple[str, bytes]],
        ready: Callable[[], str | None],
    ) -> None:
        self.metrics = metrics
        self.ready = ready
        handler = type("_Handler", (_Handler,), {"health": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> HealthServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()
        host, port = self.address
        logger.info("Serving /metrics, /healthz and /readyz on http://%s:%d", host, port)
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self.httpd.server_close()

    def close_in_child(self) -> None:
        """In a forked child: let go of the listening socket (the parent keeps serving it)."""
        self.httpd.socket.close()


class _Handler(BaseHTTPRequestHandler):
    health: HealthServer
    # HTTP/1.0 (the default): one request per connection, so no idle keep-alive connection holds a
    # thread, and none outlives a fork in a pool child that inherited it.

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                content_type, body = self.health.metrics()
                self._send(200, body, content_type)
            elif path == "/healthz":
                self._send(200, b"ok\n")
            elif path == "/readyz":
                problem = self.health.ready()
                if problem is None:
                    self._send(200, b"ready\n")
                else:
                    self._send(503, f"not ready: {problem}\n".encode())
            else:
                self._send(404, b"not found: try /metrics, /healthz or /readyz\n")
        except Exception as exc:  # a bug in a check must answer, not hang the probe
            logger.exception("Serving %s failed", path)
            self._send(500, f"error: {type(exc).__name__}: {exc}\n".encode())

    def _send(self, status: int, body: bytes, content_type: str = CONTENT_TYPE_TEXT) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes arrive every few seconds: keep them out of the worker's log.
        logger.debug("metrics http: " + format, *args)
