"""Shared pieces of the fuzz tests: bounded hypothesis settings, a fake reactor, a log watcher.

Every fuzz test runs a bounded number of examples with no deadline (the
machine is shared and slow at times): `FUZZ_EXAMPLES=N` runs N examples
per test instead, e.g. `FUZZ_EXAMPLES=20000 python3 -m pytest tests/fuzz`
for a long run (a `slow` test also scales with it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

from hypothesis import HealthCheck, settings
from twisted.internet import reactor as real_reactor
from twisted.internet.task import Clock

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0") or 0)


def fuzz_settings(examples: int, **kwargs) -> settings:
    """`examples` examples (or $FUZZ_EXAMPLES), no deadline, no health check about slow data generation."""
    return settings(
        max_examples=FUZZ_EXAMPLES or examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        **kwargs,
    )


class FakeReactor(Clock):
    """A `task.Clock` standing in for the reactor in the interface server's modules: timers run when advanced."""

    def callFromThread(self, f, *args, **kwargs) -> None:
        self.callLater(0, f, *args, **kwargs)

    def run_due(self, rounds: int = 20) -> None:
        """Run what is due now (callLater(0) chains included), a bounded number of rounds."""
        for _ in range(rounds):
            if not any(call.getTime() <= self.seconds() for call in self.getDelayedCalls()):
                return
            self.advance(0)


@contextlib.contextmanager
def fake_reactor() -> Iterator[FakeReactor]:
    """Replace `reactor` in every loaded `interface_server` module with a `FakeReactor`, for this block."""
    clock = FakeReactor()
    patched = []
    for name, module in list(sys.modules.items()):
        if (name == "interface_server" or name.startswith("interface_server.")) and getattr(
            module, "reactor", None
        ) is real_reactor:
            patched.append(module)
            module.reactor = clock
    try:
        yield clock
    finally:
        for module in patched:
            module.reactor = real_reactor


class Tracebacks(logging.Handler):
    """Collects every log record that carries a traceback (an exception some code caught and logged)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)

    def text(self) -> str:
        return "\n".join(self.format(r) for r in self.records)


@contextlib.contextmanager
def no_logged_tracebacks(*loggers: str) -> Iterator[Tracebacks]:
    """Fail if any of `loggers` logs an exception with its traceback inside the block."""
    handler = Tracebacks()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    targets = [logging.getLogger(name) for name in loggers]
    for target in targets:
        target.addHandler(handler)
    try:
        yield handler
    finally:
        for target in targets:
            target.removeHandler(handler)
    assert not handler.records, handler.text()
