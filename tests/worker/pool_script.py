"""A WorkerPool of fake workers, run as a subprocess by test_pool.py.

    python -m tests.worker.pool_script EVENTS_FILE MODE PROCESSES [SHUTDOWN_TIMEOUT]

MODE: `drain` (run until SIGTERM, then take 0.5 s to finish "the message in hand"),
`crash` (run() raises at once), `stuck` (ignores SIGTERM). Every child appends
"<pid> <event>" lines to EVENTS_FILE.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
django.setup()

from channels_core.signals import worker_process_ready  # noqa: E402
from worker.pool import WorkerPool  # noqa: E402

EVENTS, MODE, PROCESSES = sys.argv[1], sys.argv[2], int(sys.argv[3])
SHUTDOWN_TIMEOUT = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0


def record(event: str) -> None:
    fd = os.open(EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{os.getpid()} {event}\n".encode())
    finally:
        os.close(fd)


class FakeWorker:
    def __init__(self) -> None:
        self.stop = False

    def ready(self) -> None:
        record("ready")

    def _on_term(self, signo, frame) -> None:
        self.stop = True

    def run(self) -> None:
        if MODE == "crash":
            raise RuntimeError("fake worker crashes at start")
        signal.signal(signal.SIGTERM, signal.SIG_IGN if MODE == "stuck" else self._on_term)
        record("running")
        while not self.stop:
            time.sleep(0.02)
        time.sleep(0.5)  # the message in hand
        record("drained")


worker_process_ready.connect(lambda sender, **kwargs: record("process_ready"), weak=False)
logging.basicConfig(level=logging.INFO, format="%(message)s")
code = WorkerPool(FakeWorker, PROCESSES, shutdown_timeout=SHUTDOWN_TIMEOUT).run()
print(f"pool returned {code}", flush=True)
sys.exit(code)
