"""The incremental RESP2 parser the event-loop receiver reads replies with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels_core.layers.redis.resp import ProtocolError, ReplyError, RespParser


def encode(value) -> bytes:
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, list):
        return b"*%d\r\n" % len(value) + b"".join(encode(v) for v in value)
    raise TypeError(value)


replies = st.recursive(
    st.none() | st.binary(max_size=200) | st.integers(-(2**63), 2**63 - 1),
    lambda children: st.lists(children, max_size=6),
    max_leaves=30,
)


@given(st.lists(replies, min_size=1, max_size=5), st.data())
def test_replies_fed_in_arbitrary_pieces_come_out_whole_and_in_order(values, data):
    stream = b"".join(encode(v) for v in values)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    parser = RespParser()
    out = []
    start = 0
    for cut in [*cuts, len(stream)]:
        parser.feed(stream[start:cut])
        start = cut
        while (reply := parser.get()) is not RespParser.NOTHING:
            out.append(reply)
    assert out == values


def test_blmpop_reply_nil_array_simple_string_and_error():
    parser = RespParser()
    parser.feed(b"*2\r\n$3\r\nkey\r\n*2\r\n$1\r\na\r\n$2\r\nbc\r\n*-1\r\n+OK\r\n-ERR wrong\r\n")
    assert parser.get() == [b"key", [b"a", b"bc"]]
    assert parser.get() is None
    assert parser.get() == b"OK"
    error = parser.get()
    assert isinstance(error, ReplyError) and str(error) == "ERR wrong"
    assert parser.get() is RespParser.NOTHING


def test_bulk_string_missing_its_last_byte_is_incomplete():
    parser = RespParser()
    parser.feed(b"$5\r\nhello\r")
    assert parser.get() is RespParser.NOTHING
    parser.feed(b"\n")
    assert parser.get() == b"hello"


@pytest.mark.parametrize("garbage", [b"?what\r\n", b"$abc\r\n", b"*x\r\n"])
def test_bytes_that_are_not_resp_raise(garbage):
    parser = RespParser()
    parser.feed(garbage)
    with pytest.raises(ProtocolError):
        parser.get()
