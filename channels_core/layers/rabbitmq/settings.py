"""Where the broker is: the `url` setting, its environment defaults, and pika's connection parameters."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pika

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def resolve_url(url: str | None, environ: Mapping[str, str] | None = None) -> str:
    """`url`, else `$RABBITMQ_URL`, else `$CLOUDAMQP_URL` (Heroku's add-on), else the local broker."""
    environ = os.environ if environ is None else environ
    return url or environ.get("RABBITMQ_URL") or environ.get("CLOUDAMQP_URL") or DEFAULT_URL


def connection_parameters(
    url: str, heartbeat: int | None = 30, connection_name: str | None = None
) -> pika.URLParameters:
    """pika parameters for `url` (`amqps://` means TLS; query options such as `?heartbeat=` win over ours).

    `heartbeat` lets both sides notice a dead peer behind a silent network
    (a NAT dropping the flow, a broker frozen by its memory alarm) instead
    of waiting for TCP, which can take hours; `connection_name` is what
    `rabbitmqctl list_connections client_properties` and the management
    UI show, so an operator can tell which process holds which connection.
    """
    if not url.startswith(("amqp://", "amqps://")):
        raise ValueError(f"RabbitMQ url must start with amqp:// or amqps://, not {url!r}")
    params = pika.URLParameters(url)
    if heartbeat is not None and "heartbeat" not in url:
        params.heartbeat = heartbeat
    if connection_name:
        properties = dict(params.client_properties or {})
        properties["connection_name"] = connection_name
        params.client_properties = properties
    # Fail fast: a layer call must not hang for pika's default 10 s socket timeout on a dead host.
    params.socket_timeout = min(params.socket_timeout or 5, 5)
    params.blocked_connection_timeout = 30
    return params
