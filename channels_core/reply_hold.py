"""A consumer's last reply, held so the worker sends it with its next read.

A worker that sends an HTTP response and then reads the next request makes
two round trips to the layer where one would do: the Redis layer can write
the send and the blocking read together (`send_then_receive_batch`). The
worker opens the hold around the last message of a batch; `ViewConsumer`
offers it the final message of a response (`hold`), which then leaves with
the worker's next read instead of at once. Outside a worker (the test
client, a consumer calling another) nothing is open and `hold` says no, so
the reply is sent at once as before.

The held reply leaves after the consumer returns and after the
`consumer_finished` receivers ran, never after anything else sent to the
client: the worker sends it first if the consumer raises or buffered other
sends (`pending_message_store`).
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["ReplyHold", "reply_hold"]


class ReplyHold:
    """Per thread: open or not, and at most one held `(channel name, message)`."""

    def __init__(self) -> None:
        self._local = threading.local()

    def open(self) -> None:
        """Accept one reply from now on (the worker, around the last message of a batch)."""
        self._local.open = True

    def close(self) -> None:
        """Accept no more; what was held stays until `take`."""
        self._local.open = False

    def hold(self, channel: str, message: dict) -> bool:
        """Keep `message` for `channel` for the worker's next read; False (send it yourself) unless open."""
        local = self._local
        if not getattr(local, "open", False):
            return False
        local.open = False  # one reply: anything after it is sent at once, after this one (see `take`)
        local.held = (channel, message)
        return True

    def take(self) -> tuple[str, Any] | None:
        """The held `(channel name, message)`, or None; the hold is then empty and closed."""
        local = self._local
        local.open = False
        held = getattr(local, "held", None)
        local.held = None
        return held


reply_hold = ReplyHold()
"""The hold the worker opens and `ViewConsumer` offers its last reply to."""
