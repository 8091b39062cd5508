"""Removing a test's RabbitMQ queues: the layer's `flush`, then a check for queues its registry missed.

`flush` deletes the queues named in the prefix's registry. A queue declared
by a live process while another process's flush runs can escape it (seen in
about one `PortedAppsOnRabbitMQ` run in two on 2026-12-07: one reply-side queue
such as `<prefix>http.disconnect`, reported in /work/notes/request_matrix.md).
AMQP cannot list queues, so after the flush this looks up the channels the
test's processes use by name (a passive declare) and deletes those still there,
warning about each: no queue is left, and the layer's miss stays visible.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import pika

from channels_core.layers.layer_url import from_url

CHANNELS = (
    "http.request",
    "http.disconnect",
    "websocket.connect",
    "websocket.receive",
    "websocket.disconnect",
    "chat.receive",
    "#registry",
)
"""The test project's channels (and the layer's registry queue)."""


def remove_prefix(url: str, prefix: str, channels: Iterable[str] = CHANNELS) -> list[str]:
    """Flush `prefix` on the broker at `url`, then delete what the flush missed of `channels`; the missed names."""
    layer = from_url(url, prefix=prefix)
    try:
        layer.flush()
    finally:
        layer.close()
    missed = []
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        for name in channels:
            channel = connection.channel()
            try:
                channel.queue_declare(prefix + name, passive=True)
            except pika.exceptions.ChannelClosedByBroker:  # 404: not there, as it should be
                continue
            missed.append(prefix + name)
            channel.queue_delete(prefix + name)
            channel.close()
    finally:
        connection.close()
    if missed:
        warnings.warn(f"RabbitMQ flush missed {missed} (deleted now)", stacklevel=2)
    return missed
