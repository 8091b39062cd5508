"""The private redis-py name the Redis layer reads (`Connection._sock`), checked on the installed redis-py.

`test_redis_py_versions.py` runs this file on redis-py 5 too. If an upgrade
fails here, `channels_core/layers/redis/redis_py_private.py` says what the
name is used for.
"""

from __future__ import annotations

import socket

import redis

from channels_core.layers.redis.hosts import parse_hosts
from channels_core.layers.redis.redis_py_private import socket_of


def test_redis_py_connection_sock_is_the_connected_socket_and_none_otherwise(redis_url):
    conn = parse_hosts([redis_url])[0].new_connection()
    assert isinstance(conn, redis.Connection)
    assert socket_of(conn) is None
    conn.connect()
    try:
        sock = socket_of(conn)
        assert isinstance(sock, socket.socket) and sock.fileno() >= 0
        conn.send_command("PING")
        assert conn.read_response() in (b"PONG", "PONG", True)
        # What the layer relies on: the reply to a command sent is read from this very socket.
        conn.send_command("PING")
        assert sock.recv(64) == b"+PONG\r\n"
    finally:
        conn.disconnect()
    assert socket_of(conn) is None
