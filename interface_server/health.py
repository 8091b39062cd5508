"""Health of the interface server for load balancers and Kubernetes: `/healthz` and `/readyz`.

`/healthz` answers 200 while the process (its reactor) runs. `/readyz`
answers 200 only when the server can do its job, else 503 with the first
reason found (one short line):

- it is shutting down (a load balancer stops sending it new clients);
- the reply reader is not reading (its thread died, or it lost the layer
  and is reconnecting);
- the layer is not reachable: `LayerProbe` asks it a cheap read-only question
  (`global_statistics()`, one HGETALL per Redis server) every
  `PROBE_INTERVAL` seconds from its own thread, never the reactor, and the
  last answer failed, is older than `PROBE_STALE`, or the question has been
  waiting longer than `PROBE_TIMEOUT`;
- the sender has not got a message into the layer for 2 s (`Sender.unavailable`).

A layer without the `statistics` extension is not probed: the other checks apply.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from channels_core.layers.contract import supports

if TYPE_CHECKING:
    from .server import Server

logger = logging.getLogger("interface_server.health")

PROBE_INTERVAL = 1.0
"""Seconds between two probes of the layer (an idle server then sends Redis one HGETALL per second per shard)."""
PROBE_TIMEOUT = 2.0
"""A probe unanswered for this long makes the server not ready (a Redis that accepts but never answers)."""
PROBE_STALE = 5.0
"""The last successful probe must be this recent."""


class LayerProbe(threading.Thread):
    """Asks the layer a read-only question every `interval` seconds; `problem()` says what is wrong, if anything."""

    def __init__(self, layer: Any, interval: float = PROBE_INTERVAL, clock: Any = time.monotonic) -> None:
        super().__init__(name="layer-probe", daemon=True)
        self.layer = layer
        self.interval = interval
        self.clock = clock
        self.enabled = supports(layer, "statistics")
        self.ok_at: float | None = None  # last success
        self.error: str | None = None  # last failure (None after a success)
        self.asking_since: float | None = None  # a probe is running since
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.probe_once()
            self._stop_event.wait(self.interval)

    def probe_once(self) -> None:
        self.asking_since = self.clock()
        try:
            self.layer.global_statistics()
        except Exception as exc:
            if self.error is None:
                logger.warning("Readiness: the channel layer does not answer (%s: %s)", type(exc).__name__, exc)
            self.error = f"{type(exc).__name__}: {exc}"
        else:
            if self.error is not None:
                logger.warning("Readiness: the channel layer answers again")
            self.error = None
            self.ok_at = self.clock()
        finally:
            self.asking_since = None

    def stop(self) -> None:
        self._stop_event.set()

    def problem(self, now: float | None = None) -> str | None:
        """Why the layer counts as unreachable, or None."""
        if not self.enabled:
            return None
        now = self.clock() if now is None else now
        asking = self.asking_since
        if asking is not None and now - asking >= PROBE_TIMEOUT:
            return f"the channel layer has not answered for {now - asking:.1f} s"
        if self.error is not None:
            return f"the channel layer is unreachable ({_short(self.error)})"
        if self.ok_at is None:
            return "the channel layer has not been reached yet"
        if now - self.ok_at > PROBE_STALE:
            return f"the channel layer last answered {now - self.ok_at:.1f} s ago"
        return None


def reader_problem(reader: Any) -> str | None:
    """Why the reply reader is not reading, or None (thread reader or in-reactor reader)."""
    if reader is None:
        return "the reply reader has not started"
    if hasattr(reader, "is_alive"):  # replies.ReplyReader, a thread
        if not reader.is_alive() or reader.stopping.is_set():
            return "the reply reader thread is not running"
        return None
    if getattr(reader, "stopping", False):
        return "the reply reader is stopped"
    outage = getattr(reader, "outage_since", None)
    if outage is not None:
        return f"the reply reader lost the channel layer {time.monotonic() - outage:.1f} s ago and is reconnecting"
    if not getattr(reader, "reading", False):
        return "the reply reader is connecting"
    return None


def readiness(server: Server) -> str | None:
    """Why `server` is not ready (one line), or None when it is."""
    if server.shutting_down:
        return "shutting down"
    problem = reader_problem(server.reader)
    if problem is not None:
        return problem
    probe = getattr(server, "layer_probe", None)
    if probe is not None:
        problem = probe.problem()
        if problem is not None:
            return problem
    if server.sender.unavailable():
        return "the channel layer has not taken a message for 2 s"
    return None


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
