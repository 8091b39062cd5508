"""The worker's lease and the sweeper of dead interface servers, in one daemon thread.

Every `runworker` process (each child with `--processes N`) runs a
`Sweeper` when its layer supports the `leases` extension. Every
`SWEEP_INTERVAL` seconds it:

- renews the worker's own lease (`info`: kind "worker", pid, host, the
  channels it listens on, channels_core's version, "started" (unix time),
  "load" {"threads", "handled" (messages so far), "busy" (threads in a
  consumer now)} and "dropped" (non-zero counts of invalid messages and
  unreadable elements)), so interface servers can tell whether anything
  consumes `http.request`, and operators can list the live workers
  (`manage.py channels_status`);
- calls `lease_sweep`: one sweeper among all the workers is elected through
  the layer (the election lasts `ELECTION_TTL` seconds and is kept by
  calling again), and it sends the `websocket.disconnect` of every
  connection of each interface server whose lease expired (SIGKILL, a
  crash, a partition), so their consumers run and group memberships go.

A failure here (Redis down, a bug) is logged and retried at the next tick:
it never stops the worker. Once the layer answers again, the sweeper only
renews for `RECOVERY_GRACE` seconds (after a long outage every lease looks
expired; live servers, which retry every second, renew meanwhile). On a
clean exit `stop()` ends the lease.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from channels_core import __version__
from channels_core.layers.contract import supports
from channels_core.layers.errors import LayerConfigurationError

logger = logging.getLogger("worker.sweeper")

DEFAULT_LEASE_TTL = 5.0
SWEEP_INTERVAL = 1.0
ELECTION_TTL = 5.0
RECOVERY_GRACE = 3.0
"""After the layer was unreachable, seconds of renewing only: live holders renew before anyone is swept."""


class Sweeper:
    """Renews this worker's lease and sweeps expired leases from a daemon thread."""

    def __init__(
        self,
        layer: Any,
        channels: Sequence[str],
        lease_ttl: float = DEFAULT_LEASE_TTL,
        interval: float = SWEEP_INTERVAL,
        election_ttl: float = ELECTION_TTL,
    ) -> None:
        if lease_ttl <= 0 or interval <= 0:
            raise ValueError("lease_ttl and interval must be positive")
        self.layer = layer
        self.lease_ttl = lease_ttl
        # Renew at least every third of the lease, whatever the sweep interval.
        self.interval = min(interval, lease_ttl / 3)
        self.election_ttl = max(election_ttl, 3 * self.interval)
        self.holder = f"worker.{os.getpid()}.{secrets.token_hex(6)}"
        self.info: dict[str, Any] = {
            "kind": "worker",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "channels": list(channels),
            "version": __version__,
            "started": time.time(),
        }
        self.worker: Any = None
        """The `Worker` or `WorkerGroup` whose load the lease publishes (set by `SweepingWorker`)."""
        self.swept_total = 0
        self.disconnects_total = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.sweep_after = 0.0
        """No sweep before this `time.monotonic()` (set after the layer was unreachable)."""

    def start(self) -> Sweeper:
        self._thread = threading.Thread(target=self._run, name="lease-sweeper", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and end the lease (a clean exit: nothing is swept for a worker)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        try:
            self.layer.lease_end(self.holder)
        except LayerConfigurationError as exc:
            # The worker is stopping because of this very error, reported once by runworker.
            logger.debug("Could not end the worker's lease %s (%s)", self.holder, exc)
        except Exception as exc:
            logger.warning("Could not end the worker's lease %s (%s: %s)", self.holder, type(exc).__name__, exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:
                # Never fatal: the worker goes on consuming; the next tick retries.
                if not self._failing:
                    self._failing = True
                    if isinstance(exc, ConnectionError):  # the layer logs its own outage once
                        logger.warning("Lease renewal and sweeping wait for the channel layer; retrying")
                    else:
                        logger.warning("Lease renewal or sweep failed (%s: %s); retrying", type(exc).__name__, exc)
                else:
                    logger.debug("Lease renewal or sweep still fails (%s: %s)", type(exc).__name__, exc)
            self._stop.wait(self.interval)

    def tick(self) -> list[str]:
        """Renew this worker's lease, then sweep if elected; the holders swept."""
        state = self.layer.lease_renew(self.holder, self.lease_ttl, self.current_info())
        if self._failing:
            self._failing = False
            # After an outage every lease looks expired: give live holders time to renew first.
            self.sweep_after = time.monotonic() + RECOVERY_GRACE
            logger.warning("Leases work again; sweeping resumes in %g s", RECOVERY_GRACE)
        if state == "lost":
            logger.warning(
                "The channel layer lost its state (a Redis restart without persistence?): groups and "
                "leases are gone; interface servers close their sockets with 1012 so clients rejoin"
            )
        if time.monotonic() < self.sweep_after:
            return []
        swept = self.layer.lease_sweep(self.holder, self.election_ttl)
        if swept:
            counts = getattr(self.layer, "last_sweep", None) or {}
            sent = sum(counts.values())
            self.swept_total += len(swept)
            self.disconnects_total += sent
            logger.warning(
                "Swept %d expired lease(s) (%s): sent %d disconnect(s) for their connections",
                len(swept),
                ", ".join(f"{h}: {counts.get(h, 0)}" for h in swept),
                sent,
            )
        return swept

    def current_info(self) -> dict[str, Any]:
        """What the lease carries now: `info` plus the worker's load and drops (small: renewed every second)."""
        info = dict(self.info)
        worker = self.worker
        if worker is not None:
            threads = [worker, *getattr(worker, "workers", ())]
            info["load"] = {
                "threads": len(threads),
                "handled": sum(getattr(t, "handled", 0) for t in threads),
                "busy": sum(1 for t in threads if getattr(t, "in_job", False)),
            }
            invalid = getattr(getattr(worker, "invalid", None), "total", 0)
        else:
            invalid = 0
        decoder = getattr(self.layer, "decoder", None)
        unreadable = getattr(getattr(decoder, "drops", None), "total", 0)
        info["dropped"] = {name: n for name, n in (("invalid", invalid), ("unreadable", unreadable)) if n}
        return info


def start_sweeper(layer: Any, channels: Sequence[str], lease_ttl: float = DEFAULT_LEASE_TTL) -> Sweeper | None:
    """A started `Sweeper` if `layer` supports leases, else None."""
    if not supports(layer, "leases"):
        logger.debug("The layer %s has no leases: no sweeper", layer)
        return None
    return Sweeper(layer, channels, lease_ttl).start()


class SweepingWorker:
    """A worker whose `run` ends the sweeper's lease when it returns (what `runworker` runs)."""

    def __init__(self, worker: Any, sweeper: Sweeper) -> None:
        self.worker = worker
        self.sweeper = sweeper
        sweeper.worker = worker  # its lease publishes the worker's load

    def ready(self) -> None:
        self.worker.ready()

    def run(self) -> None:
        try:
            self.worker.run()
        finally:
            self.sweeper.stop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.worker, name)
