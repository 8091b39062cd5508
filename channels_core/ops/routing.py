"""The page's WebSocket route: `include("channels_core.ops.routing.channel_routing")` in your routing.

Include it without a `path` filter: the route matches the whole path,
`CHANNELS_OPS_WEBSOCKET_PATH` (default `/admin/channels-ops/ws/`), which is
also where the page connects. To move it, change that setting.
"""

from __future__ import annotations

import re

from routing import route_class

from .conf import websocket_path
from .consumers import OpsStatusConsumer

channel_routing = [route_class(OpsStatusConsumer, path="^" + re.escape(websocket_path()) + "$")]
