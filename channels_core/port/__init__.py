"""Port a Channels 1.x project to channels-core: `python -m channels_core.port PATH [--check] [--diff]`.

What changes (exact spans only; the rest of each file stays byte for byte):
Channels 1.x imports (`imports`), `INSTALLED_APPS` and channel layer `BACKEND`
strings (`settings`), `daphne` command lines (`commands`) and the
WebSocketBridge's static path (`templates`), all from one table (`table`).
What it cannot do it prints with file and line (`upgrade`, and the notes of
each part above).
"""

from __future__ import annotations

from .edits import Note
from .project import FileChange, Result, port_tree

__all__ = ["FileChange", "Note", "Result", "port_tree"]
