"""The page's WebSocket: staff only, read-only, one `collect_status` per request.

Protocol (JSON text frames):

- page -> server: `{"type": "refresh"}`; anything else gets an `error` frame.
- server -> page: `{"type": "status", "status": <collect_status dict>,
  "limit": <queues and groups listed at most>}` on connect and after each
  refresh, or `{"type": "error", "error": "..."}`.

Who may connect: the browser's session (its cookie, on the handshake) must
belong to an active staff user, and the handshake's Origin must be one of
`ALLOWED_HOSTS`; otherwise the handshake is refused (HTTP 403). The session
is read again on every refresh, so logging out, losing staff status or being
deactivated closes an open page's socket (code 4003) at its next refresh;
the user stored in the channel session at connect is deliberately not
trusted for that (it outlives a logout).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from ..generic.websockets import JsonWebsocketConsumer
from ..status import collect_status
from .access import is_staff, origin_allowed, session_user

logger = logging.getLogger("channels_core")

PAGE_LIMIT = 200
"""Queues and groups sent to the page at most (fullest and largest first): frames stay small, tables readable."""

CLOSE_NOT_STAFF = 4003
"""Close code of an open socket whose session no longer belongs to active staff (the page says so)."""


def json_safe(value: Any) -> Any:
    """`value` with what JSON.parse cannot read replaced: NaN and infinities by None, bytes by text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def _client(message: Any) -> str:
    client = message.content.get("client")
    if isinstance(client, (list, tuple)) and len(client) == 2:
        return f"{client[0]}:{client[1]}"
    return "an unknown client"


class OpsStatusConsumer(JsonWebsocketConsumer):
    """Answers the operations page: the layer's status on connect and on each `{"type": "refresh"}`."""

    # The channel session keeps the HTTP session's key, so every later message re-reads that session.
    http_user_and_session = True
    limit = PAGE_LIMIT

    def current_user(self) -> Any:
        return session_user(self.message.http_session)

    def connect(self, message: Any, **kwargs: Any) -> None:
        if not origin_allowed(message):
            self.refuse("its Origin is not in ALLOWED_HOSTS")
            return
        if not is_staff(self.current_user()):
            self.refuse("the session is not an active staff member's")
            return
        message.reply_channel.send({"accept": True})
        self.send_status()

    def refuse(self, why: str) -> None:
        """Refuse the handshake (a close before the accept: HTTP 403), keeping nothing of this socket."""
        logger.info("Operations page socket from %s refused: %s", _client(self.message), why)
        # The session decorators stored the HTTP session's key (and the user) in the channel session;
        # emptied, it is never written, so refused attempts leave no session rows behind.
        self.message.channel_session.clear()
        self.close()

    def receive(self, content: Any, **kwargs: Any) -> None:
        if not is_staff(self.current_user()):
            self.close(CLOSE_NOT_STAFF)
            return
        if isinstance(content, dict) and content.get("type") == "refresh":
            self.send_status()
        else:
            self.send({"type": "error", "error": 'this socket only answers {"type": "refresh"}'})

    def invalid_frame(self, reason: str) -> None:
        # Read-only and staff only: a bad frame is answered, not turned into a worker error.
        self.send({"type": "error", "error": reason})

    def send_status(self) -> None:
        """Send one snapshot of the layer this socket's messages came through."""
        status = collect_status(self.message.channel_layer, limit=self.limit)
        self.send({"type": "status", "status": json_safe(status), "limit": self.limit})
