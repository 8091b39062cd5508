"""The WebSocketBridge's static path in templates and pages.

Only the exact path `channels/js/websocketbridge.js` (whole path segments)
changes; `new channels.WebSocketBridge()` keeps its 1.x global name.
"""

from __future__ import annotations

import re

from . import table
from .edits import Edit

_BRIDGE = re.compile(r"(?<![\w.-])" + re.escape(table.BRIDGE[0]))


def rewrite_bridge_path(text: str) -> list[Edit]:
    """Edits replacing each reference to the 1.x bridge script by the new static path."""
    return [Edit(m.start(), m.end(), table.BRIDGE[1]) for m in _BRIDGE.finditer(text)]
