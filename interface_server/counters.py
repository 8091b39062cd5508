"""Named event counters on the server (`server.counters`, a plain dict of ints).

Modules count what they did to a client (a trickle timeout, an output-limit
close) with `count(server, name)`; the dict is created on first use, so any
module may count without the server having to know every name.
"""

from __future__ import annotations

from typing import Any


def count(server: Any, name: str, amount: int = 1) -> int:
    """Add `amount` to `server.counters[name]` (creating the dict if needed); returns the new value."""
    counters = getattr(server, "counters", None)
    if counters is None:
        counters = server.counters = {}
    value = counters.get(name, 0) + amount
    counters[name] = value
    return value
