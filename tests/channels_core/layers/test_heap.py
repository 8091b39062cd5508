"""channels_core.layers.heap: a started process's objects leave the garbage collector's full passes, once.

The interface server settles once it listens and a worker in `ready()`; both are checked in real
processes (`tests/interface_server/test_heap_settled.py`) and here in this one.
"""

from __future__ import annotations

import gc
import logging
import os

import pytest

from channels_core.layers import heap


@pytest.fixture
def unsettled(monkeypatch):
    monkeypatch.setattr(heap, "_settled_in", None)


def test_settle_collects_then_freezes_once_per_process(unsettled, caplog):
    class Cycle:
        pass

    garbage = Cycle()
    garbage.me = garbage  # only a full collection frees a cycle
    collected = []
    gc.callbacks.append(lambda phase, info: collected.append(info["generation"]) if phase == "stop" else None)
    try:
        del garbage
        with caplog.at_level(logging.DEBUG, logger="channels_core.layers.heap"):
            frozen = heap.settle()
    finally:
        gc.callbacks.pop()
    assert 2 in collected  # a full pass ran first: startup's garbage is not frozen with the rest
    # This process's objects: pytest, the project, their imports (frozen ones freed since leave the count).
    assert frozen > 1000 and gc.get_freeze_count() > 1000
    assert f"Froze {frozen} startup objects" in caplog.text
    assert heap.settle() == 0  # once per process


def test_a_forked_child_settles_again(unsettled):
    heap.settle()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own process, its own settle
        try:
            os.write(write, b"%d" % heap.settle())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert int(os.read(read, 100) or b"0") > 0
    os.close(read)
