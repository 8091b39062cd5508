"""Turns host/port/unix-socket options into Twisted endpoint description strings."""

from __future__ import annotations


def _escape(value: str) -> str:
    # Endpoint strings split on ':' and '=', so IPv6 colons must be escaped.
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def build_endpoints(host: str | None = None, port: int | None = None, unix_socket: str | None = None) -> list[str]:
    """Endpoint strings for the given binding options.

    A port without a host binds 127.0.0.1; a host without a port binds 8000;
    nothing at all binds 127.0.0.1:8000 (unless a unix socket is given).
    """
    endpoints = []
    if host is not None or port is not None or unix_socket is None:
        host = (host or "127.0.0.1").strip("[]")
        endpoints.append(f"tcp:port={8000 if port is None else port}:interface={_escape(host)}")
    if unix_socket is not None:
        endpoints.append(f"unix:{_escape(unix_socket)}")
    return endpoints
