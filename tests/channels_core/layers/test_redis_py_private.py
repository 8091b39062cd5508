"""The private redis-py names the Redis layer reads (`Connection._sock`, `_parser`), checked on the installed redis-py.

`test_redis_py_versions.py` runs this file on redis-py 5 too. If an upgrade
fails here, `channels_core/layers/redis/redis_py_private.py` says what the
name is used for.
"""

from __future__ import annotations

import socket

import pytest
import redis
import redis.exceptions as rexc
from redis._parsers import _RESP2Parser, _RESP3Parser
from redis.utils import HIREDIS_AVAILABLE

from channels_core.layers.redis.hosts import parse_hosts
from channels_core.layers.redis.redis_py_private import (
    error_parser,
    hiredis_push_type,
    push_handler,
    reply_format,
    socket_of,
)


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


def test_reply_format_names_the_parser_redis_py_reads_a_connection_with(redis_url):
    for protocol in (2, 3):
        conn = parse_hosts([redis_url], {"protocol": protocol})[0].new_connection()
        expected = "hiredis" if HIREDIS_AVAILABLE else f"resp{protocol}"
        if expected == "resp3" and not hasattr(_RESP3Parser(65536), "pubsub_push_handler_func"):
            expected = None  # redis-py 5.0: its RESP3 replies are read by redis-py alone
        conn.connect()  # redis-py 5 picks the RESP3 parser when HELLO 3 succeeds
        try:
            assert reply_format(conn) == expected
        finally:
            conn.disconnect()
    # A parser the lean path does not know keeps redis-py's path.
    assert reply_format(redis.Connection(parser_class=type("Other", (_RESP2Parser,), {}))) is None


def test_error_parser_makes_the_exception_read_response_raises(redis_url):
    conn = parse_hosts([redis_url])[0].new_connection()
    parse = error_parser(conn)
    try:
        conn.send_command("EVALSHA", "0" * 40, 0)
        with pytest.raises(rexc.ResponseError) as raised:
            conn.read_response()
    finally:
        conn.disconnect()
    made = parse(f"NOSCRIPT {raised.value}")
    assert type(made) is type(raised.value) is rexc.NoScriptError and str(made) == str(raised.value)
    assert type(parse("NOPERM no permissions")) is rexc.NoPermissionError
    assert isinstance(parse("LOADING Redis is loading the dataset in memory"), rexc.ConnectionError)
    plain = parse("ERR unknown command 'NOPE'")
    assert type(plain) is rexc.ResponseError and str(plain) == "unknown command 'NOPE'"


def test_push_handler_takes_a_push_message_where_the_lean_path_reads_resp3(redis_url):
    conn = parse_hosts([redis_url], {"protocol": 3})[0].new_connection()
    conn.connect()
    try:
        if reply_format(conn) is None:
            pytest.skip("redis-py 5.0: RESP3 is read by redis-py alone")
        handler = push_handler(conn)
        assert callable(handler)
        handler([b"message", b"channel", b"data"])  # a pub/sub message nobody subscribed to: logged, no error
        if reply_format(conn) == "hiredis":
            push = hiredis_push_type(conn)
            assert push is None or issubclass(push, list)
    finally:
        conn.disconnect()
