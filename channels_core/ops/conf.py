"""The page's two settings, with their defaults.

- `CHANNELS_OPS_WEBSOCKET_PATH` (default `/admin/channels-ops/ws/`): where the
  page opens its WebSocket, and the path `channels_core.ops.routing` routes.
  Under `/admin/` by default, so a proxy rule that fences the admin off (by
  address, by VPN) covers the socket too.
- `CHANNELS_OPS_REFRESH_SECONDS` (default 2, at least 0.5): how often the
  page asks for new figures. Each ask costs one `collect_status` in a
  worker: a few round trips to each Redis server.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULT_WEBSOCKET_PATH = "/admin/channels-ops/ws/"
DEFAULT_REFRESH_SECONDS = 2.0
MIN_REFRESH_SECONDS = 0.5


def websocket_path() -> str:
    """The path of the page's WebSocket (starts with `/`)."""
    path = getattr(settings, "CHANNELS_OPS_WEBSOCKET_PATH", DEFAULT_WEBSOCKET_PATH)
    if not isinstance(path, str) or not path.startswith("/") or "?" in path or "#" in path:
        raise ImproperlyConfigured(f"CHANNELS_OPS_WEBSOCKET_PATH must be a path starting with '/', not {path!r}")
    return path


def refresh_seconds() -> float:
    """Seconds between two refreshes of the page (never below `MIN_REFRESH_SECONDS`)."""
    value = getattr(settings, "CHANNELS_OPS_REFRESH_SECONDS", DEFAULT_REFRESH_SECONDS)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"CHANNELS_OPS_REFRESH_SECONDS must be a number, not {value!r}") from None
    if seconds != seconds:  # NaN
        raise ImproperlyConfigured("CHANNELS_OPS_REFRESH_SECONDS must be a number, not NaN")
    return max(MIN_REFRESH_SECONDS, seconds)
