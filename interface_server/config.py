"""The interface server's settings, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .deflate import CompressionSettings


@dataclass
class ServerConfig:
    """Every option of the server; the CLI fills it from its arguments."""

    endpoints: list[str] = field(default_factory=lambda: ["tcp:port=8000:interface=127.0.0.1"])
    fds: list[int] = field(default_factory=list)
    http_timeout: float = 120.0
    websocket_timeout: float | None = None  # None: the layer's group_expiry (or 86400); -1: never
    websocket_connect_timeout: float = 20.0
    ping_interval: float = 20.0
    ping_timeout: float = 30.0
    ws_protocols: list[str] = field(default_factory=list)
    root_path: str = ""
    proxy_headers: bool = False
    max_ws_message_size: int = 1024 * 1024
    max_request_body_size: int = 100 * 1024 * 1024
    body_stream_threshold: int = 256 * 1024
    body_chunk_size: int = 256 * 1024
    shutdown_grace: float = 30.0
    server_name: str = "interface-server"
    # Flow control and failure handling (README "Failure behaviour").
    send_timeout: float = 30.0  # how long a message may wait for a full channel or a down layer
    max_output_buffer: int = 1024 * 1024  # bytes queued for one slow reader before it is closed
    request_header_timeout: float = 10.0  # the whole request head must arrive within this
    request_body_timeout: float = 30.0  # longest gap with no body bytes
    request_body_min_rate: int = 1024  # bytes/s a body must average once past its first timeout
    keepalive_timeout: float = 5.0  # idle keep-alive connections are closed after this
    allowed_origins: list[str] = field(default_factory=list)  # empty: any Origin is accepted
    lease_ttl: float = 15.0  # the server's lease in the layer; renewed every lease_ttl / 3
    # Sockets over Server-Sent Events and long-polling (docs/topics/fallback-transports.md).
    fallback_transports: list[str] = field(default_factory=lambda: ["sse", "poll"])  # empty: off
    fallback_prefix: str = "/_channels/"  # the URLs the fallback answers (the application never sees them)
    fallback_poll_timeout: float = 25.0  # a long-poll with nothing to deliver is answered empty after this
    fallback_session_timeout: float = 15.0  # a long-poll socket with no poll for this long is disconnected
    # Operations (README "Metrics and health"): None = no metrics port.
    metrics_port: int | None = None  # /metrics, /healthz, /readyz on their own listener (0: any free port)
    metrics_host: str = "127.0.0.1"  # the metrics listener's address
    # permessage-deflate (docs/topics/compression.md): None = clients' offers are declined.
    ws_compression: CompressionSettings | None = None
