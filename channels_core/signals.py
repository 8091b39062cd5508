"""Signals sent by the worker around every consumer, and when workers start.

They are for the project's own receivers. Buffering a consumer's sends does
not hang on them: the worker starts and flushes
`channels_core.consumer_sends.pending_message_store` itself, before
`consumer_started` and before `consumer_finished`.
"""

from __future__ import annotations

from django.db import close_old_connections
from django.dispatch import Signal

consumer_started = Signal()  # kwargs: environ
consumer_finished = Signal()
worker_ready = Signal()
worker_process_ready = Signal()

# Database connections are tidied after every message, as Django does after every request
# (the test client disconnects this one around its consumers, as Django's test client does).
consumer_finished.connect(close_old_connections, dispatch_uid="channels_core.close_old_connections")
