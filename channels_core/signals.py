"""Signals sent by the worker around every consumer, and when workers start."""

from __future__ import annotations

from django.db import close_old_connections
from django.dispatch import Signal

consumer_started = Signal()  # kwargs: environ
consumer_finished = Signal()
worker_ready = Signal()
worker_process_ready = Signal()


from .message import pending_message_store  # noqa: E402

consumer_started.connect(pending_message_store.start, dispatch_uid="channels_core.pending_start")
consumer_finished.connect(pending_message_store.flush, dispatch_uid="channels_core.pending_flush")
# After the flush: database connections are tidied after every message, as Django does after every request.
consumer_finished.connect(close_old_connections, dispatch_uid="channels_core.close_old_connections")
