"""The Redis decoder fans a group element out to its sockets decoding it once, each socket with its own dict.

A group send reaches an interface-server process as one element naming all
of its members (`framing`). Decoding that element's payload once (not once
per member) is what keeps a broadcast to thousands of sockets cheap; each
member must still get a dict of its own, and a message with nested values
(which a shallow copy would share) is decoded per member as before.
"""

from __future__ import annotations

import msgpack
import pytest

from channels_core.layers.redis.decoding import Decoder


class Clock:
    def now_ms(self) -> float:
        return 1_000_000.0


def element(targets: list[str], message: dict, deadline_ms: int = 2_000_000) -> bytes:
    return f"{deadline_ms:014d}".encode() + ",".join(targets).encode() + b"\n" + msgpack.packb(message)


def counting_decoder() -> tuple[Decoder, list[int]]:
    calls = [0]

    def loads(data):
        calls[0] += 1
        return msgpack.unpackb(data, raw=False)

    return Decoder(lambda key: key.decode(), loads, expiry_ms=60_000), calls


def test_a_flat_group_message_is_decoded_once_for_all_its_sockets():
    decoder, calls = counting_decoder()
    targets = [f"s{i}" for i in range(50)]
    message = {"text": "hello", "n": 3}
    got = decoder.unpack_all(b"srv!", [element(targets, message)], Clock(), 1000)
    assert calls[0] == 1
    assert [channel for channel, _ in got] == [f"srv!{t}" for t in targets]
    assert all(m == message for _, m in got)
    got[0][1]["text"] = "changed by one consumer"  # a dict of its own per socket
    assert got[1][1]["text"] == "hello"


def test_a_message_with_nested_values_is_decoded_per_socket():
    decoder, calls = counting_decoder()
    message = {"text": "x", "meta": {"a": [1, 2]}}
    got = decoder.unpack_all(b"srv!", [element(["a", "b", "c"], message)], Clock(), 1000)
    assert calls[0] == 3
    got[0][1]["meta"]["a"].append(3)
    assert got[1][1]["meta"] == {"a": [1, 2]}


def test_the_rest_buffered_beyond_a_receive_limit_is_decoded_once_too():
    decoder, calls = counting_decoder()
    message = {"text": "later"}
    first = decoder.unpack_all(b"srv!", [element([f"s{i}" for i in range(10)], message)], Clock(), 2)
    assert len(first) == 2 and calls[0] == 1
    rest = decoder.take(["srv!"], 100)
    assert [c for c, _ in rest] == [f"srv!s{i}" for i in range(2, 10)]
    assert all(m == message for _, m in rest) and len({id(m) for _, m in rest}) == 8
    assert calls[0] == 2  # once for the buffered run, not once per socket


def test_one_socket_elements_and_undecodable_payloads_behave_as_before():
    decoder, calls = counting_decoder()
    elements = [element(["only"], {"text": "a"}), element(["x", "y"], {"text": "b"})]
    got = decoder.unpack_all(b"srv!", elements, Clock(), 9)
    assert got == [("srv!only", {"text": "a"}), ("srv!x", {"text": "b"}), ("srv!y", {"text": "b"})]
    assert calls[0] == 2
    bad = f"{2_000_000:014d}".encode() + b"p,q\n" + b"\xc1"  # 0xc1: never valid msgpack
    assert decoder.unpack_all(b"srv!", [bad], Clock(), 9) == []
    assert decoder.drops.counts  # counted, as before


def test_each_message_of_a_fanned_out_element_records_its_queue_wait():
    decoder, _ = counting_decoder()
    decoder.waits.begin()
    sent = element([f"s{i}" for i in range(5)], {"text": "w"}, deadline_ms=1_059_500)  # sent 0.5 s ago
    got = decoder.unpack_all(b"srv!", [sent], Clock(), 3)
    assert len(got) == 3 and len(decoder.waits.last()) == 3
    waits = decoder.waits.last()
    assert waits == [pytest.approx(0.5)] * 3
    decoder.waits.begin()
    assert len(decoder.take(["srv!"], 10)) == 2 and len(decoder.waits.last()) == 2
