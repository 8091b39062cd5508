"""Consumers for the worker metrics tests through real processes (tests/worker/test_metrics_processes.py),
routed with TEST_CHANNEL_ROUTING=tests.worker.metrics_consumers.channel_routing.

metrics.ok        sleep OK_SECONDS (a consumer with a known minimum run time)
metrics.boom      log a warning on the project's own logger `metrics_test_app`, then raise ValueError
metrics.overflow  send one message to `metrics.full`, which the test keeps full (a dropped send)
metrics.slow      sleep SLOW_SECONDS (a thread visibly busy)
http.request      the test project's Django views (added by runworker); the tests send it invalid messages
"""

from __future__ import annotations

import logging
import time

from channels_core.channel import Channel
from routing import route

OK_SECONDS = 0.01
SLOW_SECONDS = 1.5
FULL_CHANNEL = "metrics.full"


def ok(message, **kwargs):
    time.sleep(OK_SECONDS)


def boom(message, **kwargs):
    logging.getLogger("metrics_test_app").warning("about to fail", extra={"step": "boom"})
    raise ValueError("metrics test consumer fails on purpose")


def overflow(message, **kwargs):
    Channel(FULL_CHANNEL).send({"from": "overflow"})


def slow(message, **kwargs):
    time.sleep(SLOW_SECONDS)


channel_routing = [
    route("metrics.slow", slow),
    route("metrics.ok", ok),
    route("metrics.boom", boom),
    route("metrics.overflow", overflow),
]
