"""Fuzzing every decoder of channel payloads: only the documented exceptions, never a crash.

- `Serializer.loads` (plain and Fernet-encrypted): a dict, or
  `UndecodableMessage` (a ValueError) for bytes that are not a message (not
  msgpack, trailing data, too deep, unhashable keys, not a dict), its
  subclass `InvalidToken` for a token under an unknown key or tampered with.
- `framing.parse`: `ValueError` for an element this layer did not write.
- `Decoder.unpack` (a popped Redis list element): messages, or nothing
  with an error logged; never raises.
- `RespParser` (the reply reader's RESP2 parser): replies, `NOTHING`
  while incomplete, or `ProtocolError`.
"""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from channels_core.layers.redis import framing
from channels_core.layers.redis.decoding import Decoder
from channels_core.layers.redis.resp import ProtocolError, ReplyError, RespParser
from channels_core.layers.serialization import InvalidToken, Serializer, UndecodableMessage

from .support import fuzz_settings

PLAIN = Serializer()
ENCRYPTED = Serializer(["new-key", "old-key"])
OLD_ONLY = Serializer(["old-key"])
OTHER = Serializer(["someone-else"])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=20)
    | st.text(max_size=20)
)
messages = st.dictionaries(
    st.text(max_size=10),
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=10,
    ),
    max_size=5,
)


def mutated(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for position, value in flips:
        if out:
            out[position % len(out)] = value
    return bytes(out[:cut] if cut is not None else out)


def loads_or_value_error(serializer: Serializer, data: bytes) -> dict | None:
    try:
        message = serializer.loads(data)
    except UndecodableMessage:  # InvalidToken is one
        return None
    assert isinstance(message, dict)
    return message


@fuzz_settings(1000)
@given(data=st.binary(max_size=200))
@example(data=b"\x91\x80")  # a list, not a dict
@example(data=b"\x81\x90\x01")  # a dict keyed by a list: unhashable
@example(data=b"\x80\x80")  # trailing data
@example(data=b"\x91" * 5000)  # nested deeper than any message
@example(data=b"\xc1")  # a reserved byte
@example(data=b"\x81\xa1\xff\x01")  # a str that is not UTF-8
@example(data=b"\xd4\x01\x00")  # an ext type
@example(data=b"\x81\x01\xd6\xff\x00\x00\x00\x00")  # a timestamp ext as a value
def test_plain_loads_arbitrary_bytes(data):
    loads_or_value_error(PLAIN, data)


@fuzz_settings(600)
@given(
    message=messages,
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3),
    cut=st.none() | st.integers(0, 300),
)
def test_plain_round_trip_and_mutations(message, flips, cut):
    data = PLAIN.dumps(message)
    assert PLAIN.loads(data) == msgpack.unpackb(
        msgpack.packb(message, use_bin_type=True), raw=False, strict_map_key=False
    )
    loads_or_value_error(PLAIN, mutated(data, flips, cut))


@fuzz_settings(400)
@given(
    message=messages,
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=2),
    cut=st.none() | st.integers(0, 300),
)
@example(message={}, flips=[], cut=0)
def test_encrypted_round_trip_rotation_and_tampering(message, flips, cut):
    new = ENCRYPTED.dumps(message)
    old = OLD_ONLY.dumps(message)
    assert ENCRYPTED.loads(new) == ENCRYPTED.loads(old)  # [new, old] reads both during a rotation
    with pytest.raises(InvalidToken):  # a receiver without the new key refuses, cleanly
        OLD_ONLY.loads(new)
    assert loads_or_value_error(ENCRYPTED, OTHER.dumps(message)) is None  # an unknown key: refused
    tampered = mutated(new, flips, cut)
    if tampered != new:
        # Fernet authenticates: refused, or (base64 ignores a last character's spare bits) the very same message.
        assert loads_or_value_error(ENCRYPTED, tampered) in (None, ENCRYPTED.loads(new))


@fuzz_settings(600)
@given(data=st.binary(max_size=120))
@example(data=b"0000000000000x\n")
@example(data=b"00000000000001")  # no newline
@example(data=b"\xff" * 20 + b"\n")
@example(data=b"        1_000\n")
def test_framing_parse_raises_only_value_error(data):
    try:
        deadline, targets, payload = framing.parse(data)
    except ValueError:
        return
    assert isinstance(deadline, int) and isinstance(targets, bytes)


class _Clock:
    def now_ms(self) -> float:
        return 1_000.0


def _queue_name(key: bytes) -> str:
    return key.decode("ascii").split(":", 1)[1]


@fuzz_settings(600)
@given(
    element=st.binary(max_size=120)
    | st.builds(
        lambda d, t, p: d + t + b"\n" + p,
        st.sampled_from([b"99999999999999", b"00000000000000", b"9999999999999x"]),
        st.binary(max_size=20),
        st.binary(max_size=60),
    ),
    key=st.sampled_from([b"p:http.request", b"p:interface.response.abc!", b"p:x?y"]),
    limit=st.integers(0, 5),
    with_now=st.booleans(),
)
@example(element=b"99999999999999\xff\xfe\n\x80", key=b"p:interface.response.abc!", limit=1, with_now=True)
def test_decoder_unpack_never_raises(element, key, limit, with_now):
    decoder = Decoder(_queue_name, PLAIN.loads)
    got = decoder.unpack(key, element, _Clock(), 1_000.0 if with_now else None, limit)
    assert len(got) <= max(limit, 0)
    for channel, message in got:
        assert isinstance(channel, str) and isinstance(message, dict)
    queue = _queue_name(key)
    decoder.take([queue], 100)
    decoder.clear()


resp_pieces = st.sampled_from(
    [b"*", b"$", b":", b"+", b"-", b"_", b"1", b"2", b"-1", b"0", b"\r\n", b"OK", b"ERR x", b"abc", b"99999999999"]
) | st.binary(max_size=6)


@fuzz_settings(800)
@given(pieces=st.lists(resp_pieces, max_size=40), splits=st.integers(1, 5))
@example(pieces=[b"*1\r\n" * 5000, b":1\r\n"], splits=1)  # nested deeper than Python's recursion limit
@example(pieces=[b"$-5\r\n"], splits=1)
@example(pieces=[b"*3\r\n$1\r\na\r\n"], splits=2)
def test_resp_parser_raises_only_protocol_error(pieces, splits):
    data = b"".join(pieces)
    parser = RespParser()
    step = max(1, len(data) // splits)
    try:
        for start in range(0, len(data), step):
            parser.feed(data[start : start + step])
            for _ in range(100):
                reply = parser.get()
                if reply is RespParser.NOTHING:
                    break
                assert reply is None or isinstance(reply, (bytes, int, list, ReplyError))
    except ProtocolError:
        pass


def test_resp_parser_reads_what_blocking_pops_return():
    parser = RespParser()
    parser.feed(b"*2\r\n$3\r\nkey\r\n*2\r\n$1\r\na\r\n$-1\r\n:5\r\n-ERR no\r\n_\r\n")
    assert parser.get() == [b"key", [b"a", None]]
    assert parser.get() == 5
    assert str(parser.get()) == "ERR no"
    assert parser.get() is None
    assert parser.get() is RespParser.NOTHING


@pytest.mark.slow
@fuzz_settings(5000)
@given(data=st.binary(max_size=400))
def test_plain_loads_arbitrary_bytes_long(data):
    loads_or_value_error(PLAIN, data)
