"""The lean command path (`channels_core.layers.redis.lean`): its packer, its readers, its socket handling.

The packer is checked byte for byte against redis-py's; the readers (the
pure-Python one for RESP2 and RESP3, hiredis where it is installed) against
the values redis-py's own parsers make of the same bytes; the socket
handling against a scripted server on a socket pair (replies arriving in
pieces, a server that closes mid-reply, a timeout, bytes nobody asked for,
a push message before a reply); and the whole path against a real Redis.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis
import redis.exceptions as rexc
from hypothesis import given, settings
from hypothesis import strategies as st
from redis._parsers import _RESP2Parser, _RESP3Parser

from channels_core.layers import RedisChannelLayer
from channels_core.layers.errors import LayerConnectionError
from channels_core.layers.redis import lean
from channels_core.layers.redis.blocking_pop import PendingPop
from channels_core.layers.redis.connection import Shard
from channels_core.layers.redis.hosts import parse_hosts
from channels_core.layers.redis.redis_py_private import reply_format, socket_of
from channels_core.layers.redis.resp import Push
from channels_core.layers.redis.scripts import Script
from channels_core.layers.redis.sentinel import SentinelConnection
from tests.security.tls import TLSRedisServer, make_ca
from tests.support.redis_server import private_server
from tests.support.scratch_install import install_into, run_pytest

try:
    import hiredis
except ImportError:
    hiredis = None

NOTHING = lean.RespParser.NOTHING
READERS = ["resp2", "resp3", pytest.param("hiredis", marks=pytest.mark.skipif(hiredis is None, reason="no hiredis"))]
parse_error = redis.Connection(protocol=2)._parser.parse_error


# -- the packer ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "commands",
    [
        [("PING",)],
        [("SET", "k", b"v"), ("GET", "k")],
        [("EVALSHA", "a" * 40, 2, b"k1", "k2", 60000, -5, 0, "h\u00e9llo", b"\x00\r\n\xff")],
        [("BLPOP", b"q", 1.5), ("ZADD", "z", 0.1, "m")],
        [("SET", "big", b"x" * 100_000), ("SET", "edge", b"y" * (16 * 1024 - 1)), ("SET", "e2", b"z" * 16 * 1024)],
        [("CLIENT ID",), (b"CLIENT UNBLOCK", 7), ("client  list",), ("CLIENT\tID",), (b"CLIENT\tID",), ("x-y", 1)],
        [("SET", "mv", memoryview(b"abc"))],
        [("SET", "empty", b""), ("SET", "", "")],
    ],
)
def test_packed_commands_are_the_bytes_redis_py_writes(commands):
    conn = redis.Connection()
    expected = b"".join(bytes(chunk) for chunk in conn.pack_commands(commands))
    assert lean.pack(commands, conn.encoder.encode) == expected


@pytest.mark.parametrize("value", [True, None, object()])
def test_packing_what_redis_py_refuses_raises_its_data_error(value):
    conn = redis.Connection()
    with pytest.raises(rexc.DataError):
        conn.pack_commands([("SET", "k", value)])
    with pytest.raises(rexc.DataError):
        lean.pack([("SET", "k", value)], conn.encoder.encode)


# -- the readers -------------------------------------------------------------------------

RESP2_STREAM = (
    b"+OK\r\n:42\r\n:-7\r\n$3\r\nabc\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n"
    b"*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n*1\r\n*0\r\n"
    b"-ERR unknown thing\r\n-NOSCRIPT No matching script. Please use EVAL.\r\n"
    b"-NOPERM this user has no permissions to access one of the keys\r\n"
    b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    b"-MOVED 3999 127.0.0.1:6381\r\n*2\r\n:1\r\n-ERR inside an array\r\n"
)
RESP2_VALUES = [
    b"OK",
    42,
    -7,
    b"abc",
    b"",
    None,
    None,
    [],
    [1, [b"a", None], [[]]],
]
RESP2_ERRORS = [
    (rexc.ResponseError, "unknown thing"),
    (rexc.NoScriptError, "No matching script. Please use EVAL."),
    (rexc.NoPermissionError, "this user has no permissions to access one of the keys"),
    (rexc.ResponseError, "WRONGTYPE Operation against a key holding the wrong kind of value"),
    (type(parse_error("MOVED 3999 127.0.0.1:6381")), None),  # MovedError from redis-py 5.1 on
]


def _reader(kind):
    return lean.new_reader(kind, lean._raising_connection_errors(parse_error) if kind != "hiredis" else parse_error)


def _all(reader):
    out = []
    while (reply := reader.gets()) is not NOTHING:
        out.append(reply)
    return out


@pytest.mark.parametrize("kind", READERS)
@pytest.mark.parametrize("piece", [1, 2, 7, 10_000])
def test_readers_read_every_resp2_type_fed_in_pieces(kind, piece):
    reader = _reader(kind)
    out = []
    for start in range(0, len(RESP2_STREAM), piece):
        reader.feed(RESP2_STREAM[start : start + piece])
        out += _all(reader)
    assert not reader.has_data()
    assert out[: len(RESP2_VALUES)] == RESP2_VALUES
    errors = out[len(RESP2_VALUES) : -1]
    assert len(errors) == len(RESP2_ERRORS)
    for error, (cls, text) in zip(errors, RESP2_ERRORS, strict=True):
        assert type(error) is cls
        if text is not None:
            assert str(error) == text
    if isinstance(errors[-1], rexc.MovedError):
        assert (errors[-1].slot_id, errors[-1].host, errors[-1].port) == (3999, "127.0.0.1", 6381)
    nested = out[-1]
    assert nested[0] == 1 and type(nested[1]) is rexc.ResponseError and str(nested[1]) == "inside an array"


RESP3_STREAM = (
    b"_\r\n,3.25\r\n,-inf\r\n#t\r\n#f\r\n(12345678901234567890\r\n=15\r\ntxt:Some string\r\n"
    b"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n*1\r\n_\r\n~2\r\n$1\r\nx\r\n$1\r\ny\r\n"
    b"!21\r\nSYNTAX invalid syntax\r\n"
)


@pytest.mark.parametrize("piece", [1, 3, 10_000])
def test_the_resp3_reader_makes_what_redis_pys_resp3_parser_makes(piece):
    if reply_format(redis.Connection(protocol=3, parser_class=_RESP3Parser)) is None:
        pytest.skip("redis-py 5.0: RESP3 is read by redis-py alone")
    reader = _reader("resp3")
    out = []
    for start in range(0, len(RESP3_STREAM), piece):
        reader.feed(RESP3_STREAM[start : start + piece])
        out += _all(reader)
    assert out[:-1] == [
        None,
        3.25,
        float("-inf"),
        True,
        False,
        12345678901234567890,
        b"Some string",
        {b"a": 1, b"b": [None]},
        [b"x", b"y"],
    ]
    assert type(out[-1]) is rexc.ResponseError and str(out[-1]) == "SYNTAX invalid syntax"
    assert out == _redis_py_reads(RESP3_STREAM, len(out), protocol=3)[:-1] + [out[-1]]


def _redis_py_reads(data: bytes, count: int, protocol: int) -> list:
    """What redis-py's pure-Python parser returns for `data`, read from a socket pair."""
    ours, theirs = socket.socketpair()
    conn = redis.Connection(protocol=protocol, parser_class=_RESP3Parser if protocol == 3 else _RESP2Parser)
    conn._sock = ours
    conn._parser.on_connect(conn)
    theirs.sendall(data)
    try:
        return [conn._parser.read_response() for _ in range(count)]
    finally:
        conn.disconnect()
        theirs.close()


def test_the_resp2_reader_makes_what_redis_pys_resp2_parser_makes():
    reader = _reader("resp2")
    reader.feed(RESP2_STREAM)
    ours = _all(reader)
    theirs = _redis_py_reads(RESP2_STREAM, len(ours), protocol=2)
    assert ours[: len(RESP2_VALUES)] == theirs[: len(RESP2_VALUES)]
    assert [(type(e), str(e)) for e in ours[len(RESP2_VALUES) : -1]] == [
        (type(e), str(e)) for e in theirs[len(RESP2_VALUES) : -1]
    ]


@pytest.mark.parametrize("kind", READERS)
def test_a_push_message_comes_out_as_one(kind):
    if kind == "resp2":
        pytest.skip("RESP2 has no push messages")
    if kind == "hiredis" and not hasattr(hiredis, "PushNotification"):
        pytest.skip("hiredis before 3.2 does not mark push messages")
    reader = _reader(kind)
    reader.feed(b">3\r\n$6\r\nMOVING\r\n:1\r\n$3\r\nx:1\r\n:5\r\n")
    push = reader.gets()
    assert list(push) == [b"MOVING", 1, b"x:1"]
    assert isinstance(push, Push if kind == "resp3" else hiredis.PushNotification)
    assert reader.gets() == 5


@pytest.mark.parametrize("kind", READERS)
@pytest.mark.parametrize("garbage", [b"?what\r\n", b"$abc\r\n", b":x1\r\n"])
def test_bytes_that_are_not_resp_raise_redis_pys_invalid_response(kind, garbage):
    reader = _reader(kind)
    reader.feed(garbage)
    with pytest.raises(rexc.InvalidResponse):
        reader.gets()


def test_the_python_reader_raises_a_connection_error_reply_where_it_meets_it():
    reader = _reader("resp2")
    reader.feed(b"*2\r\n:1\r\n-LOADING Redis is loading the dataset in memory\r\n")
    with pytest.raises(rexc.BusyLoadingError):
        reader.gets()


# -- on a socket, against a scripted server -------------------------------------------------


class Scripted:
    """A connection whose socket is one end of a socket pair; the test writes the server's bytes."""

    def __init__(self, protocol: int = 3, timeout: float = 2.0) -> None:
        ours, self.server = socket.socketpair()
        ours.settimeout(timeout)
        self.conn = redis.Connection(protocol=protocol, socket_timeout=timeout)
        self.conn._sock = ours
        self.conn._parser.on_connect(self.conn)
        if reply_format(self.conn) is None or (protocol == 3 and type(self.conn._parser) is _RESP2Parser):
            pytest.skip("redis-py 5.0: RESP3 is read by redis-py alone")
        self.lean = lean.replies_of(self.conn)
        assert self.lean is not None

    def send(self, *commands):
        self.lean.send(self.lean.pack(commands))
        return self.server.recv(65536)

    def later(self, *pieces: bytes, gap: float = 0.02) -> threading.Thread:
        def write():
            for piece in pieces:
                time.sleep(gap)
                if piece is None:
                    self.server.close()
                    return
                self.server.sendall(piece)

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        return thread


@pytest.fixture(params=[2, 3])
def scripted(request):
    s = Scripted(protocol=request.param)
    yield s
    s.conn.disconnect()
    s.server.close()


def test_commands_are_written_whole_and_replies_split_across_recvs_come_out_whole(scripted):
    assert (
        scripted.send(("SET", "k", "v"), ("GET", "k"))
        == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    )
    thread = scripted.later(b"+O", b"K\r\n$5\r\nhel", b"lo\r\n")
    assert scripted.lean.read(2) == [b"OK", b"hello"]
    thread.join()
    # Left as redis-py can keep using it: its own parser reads the next reply.
    scripted.conn.send_command("PING")
    assert scripted.server.recv(100) == b"*1\r\n$4\r\nPING\r\n"
    scripted.server.sendall(b"+PONG\r\n")
    assert scripted.conn.read_response() in (b"PONG", True)


def test_error_replies_come_back_in_place_and_read_response_raises_them(scripted):
    scripted.send(("GET", "a"), ("EVALSHA", "0" * 40, 0), ("GET", "b"))
    scripted.server.sendall(b"$1\r\nx\r\n-NOSCRIPT No matching script.\r\n$-1\r\n")
    first, error, last = scripted.lean.read(3)
    assert (first, last) == (b"x", None) and isinstance(error, rexc.NoScriptError)
    scripted.send(("SET", "k", "v"))
    scripted.server.sendall(b"-NOPERM no permissions to run the 'set' command\r\n")
    with pytest.raises(rexc.NoPermissionError):
        scripted.lean.read_response(last=True)
    assert socket_of(scripted.conn) is not None  # an error reply is an answer: the connection stays


def test_a_connection_error_reply_is_raised_and_drops_the_connection(scripted):
    scripted.send(("GET", "a"), ("GET", "b"))
    scripted.server.sendall(b"$1\r\nx\r\n-LOADING Redis is loading the dataset in memory\r\n")
    with pytest.raises(rexc.BusyLoadingError):
        scripted.lean.read(2)
    assert socket_of(scripted.conn) is None


def test_a_server_closing_mid_reply_is_redis_pys_connection_error_and_drops_the_connection(scripted):
    scripted.send(("GET", "a"))
    scripted.later(b"*2\r\n$3\r\nab", None)
    with pytest.raises(rexc.ConnectionError, match="Connection closed by server"):
        scripted.lean.read(1)
    assert socket_of(scripted.conn) is None


def test_no_reply_within_the_socket_timeout_is_redis_pys_timeout_error():
    s = Scripted(timeout=0.2)
    s.send(("GET", "a"))
    with pytest.raises(rexc.TimeoutError, match="Timeout reading from"):
        s.lean.read(1)
    assert socket_of(s.conn) is None
    s.server.close()


def test_bytes_after_the_last_reply_owed_are_a_protocol_error(scripted):
    scripted.send(("GET", "a"))
    scripted.server.sendall(b"$1\r\nx\r\n:1\r\n")
    with pytest.raises(rexc.InvalidResponse):
        scripted.lean.read(1)
    assert socket_of(scripted.conn) is None


def test_writing_to_a_closed_peer_is_redis_pys_connection_error():
    s = Scripted()
    s.server.close()
    with pytest.raises(rexc.ConnectionError, match="while writing to socket"):
        for _ in range(100):  # the first writes may still land in the kernel's buffer
            s.send(("SET", "k", b"x" * 100_000))
    assert socket_of(s.conn) is None


def test_a_push_message_before_the_reply_goes_to_redis_pys_handler():
    s = Scripted(protocol=3)
    seen = []
    s.conn._parser.pubsub_push_handler_func = seen.append
    s.lean = lean.Replies(s.conn)  # the handler is looked up when the socket is attached
    s.send(("GET", "a"))
    s.server.sendall(b">2\r\n$7\r\nmessage\r\n$1\r\nx\r\n$1\r\nv\r\n")
    assert s.lean.read(1) == [b"v"]
    assert seen == [[b"message", b"x"]]
    s.conn.disconnect()
    s.server.close()


def test_can_read_says_whether_a_reply_waits(scripted):
    scripted.send(("BLPOP", "q", 1))
    assert not scripted.lean.can_read(0)
    scripted.later(b"*2\r\n$1\r\nq\r\n$1\r\nv\r\n")
    assert scripted.lean.can_read(1.0)
    assert scripted.lean.read_response(last=True) == [b"q", b"v"]
    assert not scripted.lean.can_read(0)


# -- which connections take it ---------------------------------------------------------------


def test_only_plain_connections_reading_bytes_take_the_lean_path():
    assert lean.replies_of(redis.Connection()) is not None
    assert lean.replies_of(redis.UnixDomainSocketConnection(path="/nonexistent")) is not None
    assert lean.replies_of(redis.SSLConnection()) is not None
    assert lean.replies_of(redis.Connection(decode_responses=True)) is None
    assert lean.replies_of(redis.Connection(encoding="latin-1")) is None
    assert lean.replies_of(redis.Connection(health_check_interval=30)) is None
    # Sentinel's connection turns READONLY replies into disconnects in its read_response.
    assert lean.replies_of(SentinelConnection.__new__(SentinelConnection)) is None


# -- against a real Redis ------------------------------------------------------------------------


@pytest.fixture(params=[None, 2], ids=["default-protocol", "resp2"])
def shard(request, redis_url):
    kwargs = {} if request.param is None else {"protocol": request.param}
    shard = Shard(0, parse_hosts([redis_url], kwargs)[0])
    yield shard
    shard.close()


def test_replies_are_what_redis_py_reads(shard):
    key = f"lean:{uuid.uuid4().hex}"
    commands = [
        ("HSET", key + ":h", "a", 1, "b", b"\x00\xff"),
        ("HGETALL", key + ":h"),
        ("RPUSH", key + ":l", "x", "y"),
        ("LRANGE", key + ":l", 0, -1),
        ("EVAL", "return {1, 'two', {3, false}, redis.error_reply('MY err')}", 0),
        ("EVAL", "return redis.status_reply('FINE')", 0),
        ("GET", key + ":none"),
        ("ZADD", key + ":z", 1.5, "m"),
        ("ZRANGE", key + ":z", 0, -1, "WITHSCORES"),
        ("SMEMBERS", key + ":none"),
        ("INCRBYFLOAT", key + ":f", 0.5),
        ("LPUSH", key + ":h", "wrongtype"),
        ("DEL", key + ":h", key + ":l", key + ":z", key + ":f"),
    ]
    conn = shard.host.new_connection()
    conn.connect()
    try:
        conn.send_packed_command(conn.pack_commands(commands))
        theirs = []
        for _ in commands:
            try:
                theirs.append(conn.read_response())
            except rexc.ResponseError as exc:
                theirs.append(exc)
    finally:
        conn.disconnect()
    ours = shard.pipeline(commands, errors=True)
    assert [_comparable(r) for r in ours] == [_comparable(r) for r in theirs]
    pooled = shard.acquire()
    assert isinstance(lean.replies_of(pooled), lean.Replies)
    shard.release(pooled)


def _comparable(reply):
    if isinstance(reply, Exception):
        return (type(reply), str(reply))
    if isinstance(reply, list):
        return [_comparable(r) for r in reply]
    return reply


def test_noscript_is_loaded_and_retried_and_the_connection_stays_usable(shard):
    script = Script("lean-test", f"return {{'{uuid.uuid4().hex}', ARGV[1]}}")
    assert shard.evalsha(script, [], ["x"])[1] == b"x"
    conn = shard.acquire()
    try:
        conn.send_command("PING")
        assert conn.read_response() in (b"PONG", True)
    finally:
        shard.release(conn)


def test_an_idle_connection_the_server_closed_is_replaced(shard):
    own = shard.execute("CLIENT", "ID")  # the one pooled connection
    killer = shard.host.new_connection()
    try:
        killer.send_command("CLIENT", "KILL", "ID", own)
        assert killer.read_response() == 1
    finally:
        killer.disconnect()
    time.sleep(0.05)
    assert shard.execute("CLIENT", "ID") != own


def test_a_layer_over_resp2_and_resp3_sends_and_receives(redis_url, key_prefix):
    for protocol in (2, 3):
        layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix, connection_kwargs={"protocol": protocol})
        try:
            layer.send("lean.test", {"n": protocol})
            assert layer.receive(["lean.test"]) == ("lean.test", {"n": protocol})
            layer.send("lean.test", {"n": protocol + 1})
            assert layer.receive(["lean.test"], block=True) == ("lean.test", {"n": protocol + 1})
            layer.send_many("lean.test", [{"n": i} for i in range(5)])
            assert [m["n"] for _, m in layer.receive_batch(["lean.test"], 10, block=True)] == list(range(5))
            conn = layer.shards[0].acquire()
            if reply_format(conn) is not None:  # else redis-py 5.0 over RESP3: redis-py reads alone
                assert lean.replies_of(conn) is not None and lean.replies_of(conn).reader is not None
            layer.shards[0].release(conn)
        finally:
            layer.flush()
            layer.close()


def test_a_dead_server_is_an_outage_of_the_layer(private_redis, key_prefix):
    layer = RedisChannelLayer(hosts=[private_redis.url], prefix=key_prefix)
    layer.send("lean.test", {"n": 1})
    private_redis.stop()
    with pytest.raises(LayerConnectionError, match="unreachable"):
        layer.send("lean.test", {"n": 2})
    layer.close()


def test_a_shards_commands_and_blocking_pops_bypass_redis_pys_command_path(shard, monkeypatch, key_prefix):
    shard.handshake()  # connected (redis-py's handshake uses its own path) and the version known
    key = f"{key_prefix}lean"

    def refused(*args, **kwargs):
        raise AssertionError("redis-py's command path was used")

    for name in ("send_packed_command", "read_response", "can_read", "pack_commands"):
        monkeypatch.setattr(redis.Connection, name, refused)
    assert shard.pipeline([("SET", key, 1), ("INCR", key), ("DEL", key)]) == [b"OK", 2, 1]
    shard.execute("RPUSH", key, "a", "b", "c", "d")
    for need_id, count in ((False, 1), (True, 1), (True, 5)):
        pending = PendingPop(shard, [key.encode()], 1, need_id=need_id, count=count)
        assert pending.wait(1)
        key_popped, elements = pending.result()
        assert key_popped == key.encode() and elements
        assert (pending.client_id is not None) == need_id
    assert shard.execute("EXISTS", key) == 0


def _round_trip(layer: RedisChannelLayer) -> ssl.SSLSocket | socket.socket:
    """Send, receive (both ways) and a blocking pop through `layer`; the pooled connection's socket."""
    layer.send("lean.test", {"n": 1})
    assert layer.receive(["lean.test"]) == ("lean.test", {"n": 1})
    layer.send("lean.test", {"n": 2})
    assert layer.receive(["lean.test"], block=True) == ("lean.test", {"n": 2})
    shard = layer.shards[0]
    conn = shard.acquire()
    try:
        path = lean.replies_of(conn)
        assert path is not None and path.reader is not None and path.sock is socket_of(conn)
        return path.sock
    finally:
        shard.release(conn)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_the_lean_path_over_tls(tmp_path, key_prefix):
    ca = make_ca(tmp_path)
    with TLSRedisServer(ca) as server:
        layer = RedisChannelLayer(
            hosts=[server.url], prefix=key_prefix, blocking_timeout=1, connection_kwargs={"ssl_ca_certs": ca.ca_file}
        )
        try:
            assert isinstance(_round_trip(layer), ssl.SSLSocket)
        finally:
            layer.close()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_the_lean_path_over_a_unix_socket(tmp_path, key_prefix):
    path = str(tmp_path / "redis.sock")
    for _server in private_server(["--unixsocket", path]):
        layer = RedisChannelLayer(hosts=[f"unix://{path}"], prefix=key_prefix, blocking_timeout=1)
        try:
            assert _round_trip(layer).family == socket.AF_UNIX
        finally:
            layer.close()


def _resp3(value) -> bytes:
    if value is None:
        return b"_\r\n"
    if isinstance(value, bool):
        return b"#t\r\n" if value else b"#f\r\n"
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, int):
        return b"(%d\r\n" % value if abs(value) >= 2**63 else b":%d\r\n" % value
    if isinstance(value, float):
        return b",%r\r\n" % value
    if isinstance(value, list):
        return b"*%d\r\n" % len(value) + b"".join(_resp3(v) for v in value)
    if isinstance(value, dict):
        return b"%%%d\r\n" % len(value) + b"".join(_resp3(k) + _resp3(v) for k, v in value.items())
    if isinstance(value, tuple):  # a set on the wire; both parsers make it a list
        return b"~%d\r\n" % len(value) + b"".join(_resp3(v) for v in value)
    raise TypeError(value)


resp3_values = st.recursive(
    st.none()
    | st.booleans()
    | st.binary(max_size=50)
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.binary(max_size=5), children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(resp3_values, min_size=1, max_size=4), st.data())
def test_resp3_replies_in_any_pieces_come_out_as_redis_pys_parser_makes_them(values, data):
    if reply_format(redis.Connection(protocol=3, parser_class=_RESP3Parser)) is None:
        pytest.skip("redis-py 5.0: RESP3 is read by redis-py alone")
    stream = b"".join(_resp3(v) for v in values)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    reader = _reader("resp3")
    ours = []
    start = 0
    for cut in [*cuts, len(stream)]:
        reader.feed(stream[start:cut])
        start = cut
        ours += _all(reader)
    assert ours == _redis_py_reads(stream, len(values), protocol=3)


@pytest.mark.slow
@pytest.mark.skipif(hiredis is not None, reason="hiredis is installed: this file's hiredis cases ran already")
def test_the_hiredis_cases_pass_with_hiredis_installed(tmp_path):
    """Installs hiredis into a scratch directory and runs this file and the private-name checks with it."""
    env = install_into(tmp_path / "hiredis", "hiredis>=3.0")
    check = "import hiredis, redis.utils; assert redis.utils.HIREDIS_AVAILABLE"
    assert subprocess.run([sys.executable, "-c", check], env=env).returncode == 0
    run_pytest(
        env,
        "-m",
        "not slow",
        "tests/channels_core/layers/test_redis_lean.py",
        "tests/channels_core/layers/test_redis_py_private.py",
    )


def test_a_forked_child_makes_its_own_connections(redis_url, key_prefix):
    layer = RedisChannelLayer(hosts=[redis_url], prefix=key_prefix)
    try:
        layer.send("lean.fork", {"from": "parent"})  # a pooled connection on the lean path, in the parent
        conn = layer.shards[0].acquire()
        parents = socket_of(conn)
        layer.shards[0].release(conn)
        pid = os.fork()
        if pid == 0:  # the child: never a byte on the parent's socket
            code = 1
            try:
                got = layer.receive(["lean.fork"])
                child = layer.shards[0].acquire()
                if got == ("lean.fork", {"from": "parent"}) and socket_of(child) is not parents:
                    layer.send("lean.fork", {"from": "child"})
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert layer.receive(["lean.fork"]) == ("lean.fork", {"from": "child"})  # the parent's connection still works
    finally:
        layer.flush()
        layer.close()
