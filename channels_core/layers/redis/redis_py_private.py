"""The one private name of redis-py this package reads: a connection's socket, `Connection._sock`.

redis-py offers no public way to get a connection's socket, and this package
needs it twice: to `poll()` it (an idle pooled connection that is readable
was closed by the server; a blocking pop waits on several sockets at once),
and to hand it to an event loop (`EventReceiver`), which watches the
descriptor and reads replies itself. `_sock` is None until `connect()` and
after `disconnect()`.

Checked on redis-py 5.0 and 8.x (`setup.cfg` allows `redis>=5.0`);
`tests/channels_core/layers/test_redis_py_private.py` fails when an upgrade renames or
changes it, and runs on redis-py 5 as well (`test_redis_py_versions.py`).
"""

from __future__ import annotations

import socket
from typing import Any


def socket_of(connection: Any) -> socket.socket | None:
    """The socket of a redis-py `Connection`, or None when it is not connected."""
    return connection._sock
