"""`manage.py ipc_cleanup` against an IPC layer of the test's own prefix."""

from __future__ import annotations

import io
import os
import signal
import uuid

import pytest
from django.core.management import CommandError, call_command

from channels_core.layers.ipc import IPCChannelLayer
from channels_core.layers.ipc.cleanup import shared_objects


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("ipc_cleanup", *args, stdout=out)
    return out.getvalue()


def test_lists_sweeps_the_dead_and_removes_all(settings):
    prefix = f"t{uuid.uuid4().hex[:12]}"
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_core.layers.ipc.IPCChannelLayer", "CONFIG": {"prefix": prefix}}
    }
    layer = IPCChannelLayer(prefix=prefix)
    layer.send("c.q", {"kept": True})
    pid = os.fork()
    if pid == 0:  # a process that dies mid-send
        try:
            IPCChannelLayer(prefix=prefix)._queues.write_tmp(b"half")
            os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(1)
    os.waitpid(pid, 0)
    try:
        assert run("--list").endswith(f"1 found for prefix {prefix!r}\n")
        swept = run()
        assert f"/t/{pid}." in swept and "1 removed (left by dead processes)" in swept
        assert layer.receive(["c.q"]) == ("c.q", {"kept": True})  # the living are untouched
        layer.send("c.q", {})
        assert "1 removed for prefix" in run("--all")
        assert shared_objects(prefix) == []
        with pytest.raises(CommandError, match="prefix"):
            run("--prefix", "../etc")
    finally:
        layer.flush()
        layer.close()
