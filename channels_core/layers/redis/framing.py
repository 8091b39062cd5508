"""How one queued message is laid out inside a Redis list element.

    element = deadline + targets + b"\\n" + payload

`deadline` is 14 ASCII digits of milliseconds on the Redis server's clock
(stamped by the Lua scripts), after which the message is expired. `targets`
is empty for normal and `?` channels; for a process queue `prefix!` it holds
the comma-separated local parts the message is for, so a group broadcast to
many sockets of one process is a single element. The message body travels
inside the list element itself, so a pop is the whole read and nothing is
left behind in the keyspace.
"""

from __future__ import annotations

DEADLINE_DIGITS = 14


def parse(element: bytes) -> tuple[int, bytes, memoryview]:
    """Split an element into (deadline_ms, targets, payload)."""
    newline = element.index(b"\n", DEADLINE_DIGITS)
    return int(element[:DEADLINE_DIGITS]), element[DEADLINE_DIGITS:newline], memoryview(element)[newline + 1 :]


def unstamped(local_part: str, payload: bytes) -> bytes:
    """The element as the client sends it: the Lua script stamps the deadline in front."""
    return local_part.encode("ascii") + b"\n" + payload if local_part else b"\n" + payload
