"""Security helpers for consumers: WebSocket origin validation."""

from .websockets import AllowedHostsOnlyOriginValidator, BaseOriginValidator, allowed_hosts_only

__all__ = ["AllowedHostsOnlyOriginValidator", "BaseOriginValidator", "allowed_hosts_only"]
