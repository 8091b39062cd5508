"""On-commit callbacks in a `TestCase` run as they would without the test's own transaction.

Django's `TestCase` wraps each test in a transaction it rolls back, so
`transaction.on_commit()` callbacks (data binding sends from one) never run.
Inside `run_on_commit_at_once()` a callback registered outside the test's own
`atomic()` blocks runs at once, as in autocommit; one registered inside them
runs when the outermost of them exits with a savepoint commit, or, for an
`atomic(savepoint=False)` block (Django's own delete() uses one), at the
latest when the test helpers next read a channel (`run_pending()`); one from
a rolled-back block never runs (Django drops it). Like
`captureOnCommitCallbacks(execute=True)`, but when the callback would run in
production, not when the context ends: Channels 1.x tests receive right after
a save.

Django offers no public hook for this, so this module (and only it) reads
private names of the database wrapper: `run_on_commit` (its entries are
`(savepoint ids, func, robust)` tuples since Django 4.2), `atomic_blocks`
with `Atomic._from_testcase`, `needs_rollback`, and it shadows
`on_commit`/`savepoint_commit` per connection; plus `TestCase._databases_names`.
Checked with Django 5.2 (what CI installs); `tests/channels_core/generic/test_binding_in_test_case.py`
fails if an upgrade changes them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import connections

logger = logging.getLogger("django.db.backends.base")

# The runners of this thread: connections are per thread, and so is a test.
_local = threading.local()


def run_pending() -> None:
    """Run the callbacks that are due on this thread's connections (called before the test helpers read)."""
    for runner in getattr(_local, "runners", ()):
        runner.run_due()


@contextlib.contextmanager
def run_on_commit_at_once(aliases: Iterable[str]) -> Iterator[None]:
    """Within the block, run the on-commit callbacks of `aliases` when they would run outside a `TestCase`."""
    runners = [_Runner(connections[alias]) for alias in aliases]
    previous = getattr(_local, "runners", ())
    for runner in runners:
        runner.install()
    _local.runners = (*previous, *runners)
    try:
        yield
    finally:
        _local.runners = previous
        for runner in runners:
            runner.uninstall()


class _Runner:
    def __init__(self, connection: Any) -> None:
        self.connection = connection
        # Callbacks queued before (setUpTestData's) belong to the class's transaction: never run.
        self.done = len(connection.run_on_commit)

    def install(self) -> None:
        on_commit = self.connection.on_commit
        savepoint_commit = self.connection.savepoint_commit

        def patched_on_commit(func: Any, robust: bool = False) -> None:
            on_commit(func, robust=robust)
            self.run_due()

        def patched_savepoint_commit(sid: Any) -> None:
            savepoint_commit(sid)
            self.run_due()

        # Instance attributes shadow the methods for this (thread's) connection only.
        self.connection.on_commit = patched_on_commit
        self.connection.savepoint_commit = patched_savepoint_commit

    def uninstall(self) -> None:
        vars(self.connection).pop("on_commit", None)
        vars(self.connection).pop("savepoint_commit", None)

    def run_due(self) -> None:
        """Run what is queued once only the `TestCase`'s own atomic blocks are left open."""
        connection = self.connection
        if connection.needs_rollback or not all(
            getattr(block, "_from_testcase", False) for block in connection.atomic_blocks
        ):
            return
        # A real commit (TransactionTestCase, autocommit) empties the queue and runs it itself.
        self.done = min(self.done, len(connection.run_on_commit))
        while self.done < len(connection.run_on_commit):
            _, func, robust = connection.run_on_commit[self.done]
            self.done += 1
            if not robust:
                func()
                continue
            try:
                func()
            except Exception as exc:
                logger.error("Error calling %s in on_commit() (%s).", func.__qualname__, exc, exc_info=True)
