"""One conformance suite for every channel layer backend.

Covers asgiref 1.1.2's conformance tests (reference section 7) plus what the
original layers got wrong: name validation, process-wide capacity, group
eviction when a member's message expires unread, statistics, MessageTooLarge
and strict per-channel ordering. A backend's test class provides a `layer`
fixture built with `expiry=1, group_expiry=2, capacity=5`. Tests of an
extension (`@needs(...)`) are skipped for a layer that does not list it.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time

import pytest

from channels_core.layers import ChannelFull, MessageTooLarge
from channels_core.layers.capacity import PROCESS_QUEUE_CAPACITY
from channels_core.layers.contract import EXTENSIONS, ChannelLayer, members, supports

EXPIRY_DELAY = 1.2


def needs(*extensions: str):
    """Run the test only on a layer that supports every one of `extensions`; skip it, saying why, on others."""

    def decorate(test):
        @functools.wraps(test)
        def run(self, layer, **kwargs):
            missing = [name for name in extensions if not supports(layer, name)]
            if missing:
                pytest.skip(f"{type(layer).__name__} does not list {', '.join(missing)} in `extensions`")
            return test(self, layer, **kwargs)

        return run

    return decorate


class LayerConformance:
    """Behaviour every layer must show; subclass and provide a `layer` fixture."""

    # -- the contract (channels_core.layers.contract) ----------------------------

    def test_is_a_channel_layer(self, layer):
        assert isinstance(layer, ChannelLayer)

    def test_lists_exactly_the_extensions_it_implements(self, layer):
        listed = set(layer.extensions)
        assert listed <= set(EXTENSIONS), f"not extension names: {sorted(listed - set(EXTENSIONS))}"
        for name in listed:
            assert isinstance(layer, EXTENSIONS[name]), f"lists {name!r} but does not implement it"
        for name, protocol in EXTENSIONS.items():
            methods = [m for m in members(protocol) if callable(getattr(protocol, m, None))]
            has = [m for m in methods if callable(getattr(layer, m, None))]
            assert not has or name in listed, f"has {has} of extension {name!r} but does not list it"

    def test_methods_take_the_arguments_of_the_contract(self, layer):
        protocols = [ChannelLayer] + [EXTENSIONS[name] for name in layer.extensions]
        for protocol in protocols:
            for name in members(protocol):
                wanted = getattr(protocol, name, None)
                if not callable(wanted):
                    continue
                params = inspect.signature(getattr(layer, name)).parameters
                if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
                    continue
                missing = [p for p in list(inspect.signature(wanted).parameters)[1:] if p not in params]
                assert not missing, f"{name}() lacks {missing} of {protocol.__name__}"

    # -- sending and receiving ------------------------------------------------

    def test_send_recv(self, layer):
        for i in range(3):
            layer.send("sr_test", {"value": f"blue{i}"})
        values = set()
        for _ in range(3):
            channel, message = layer.receive(["sr_test"])
            assert channel == "sr_test"
            values.add(message["value"])
        assert values == {"blue0", "blue1", "blue2"}
        layer.send("sr_test2", {"value": "green"})
        channel, message = layer.receive(["sr_test", "sr_test2"])
        assert (channel, message) == ("sr_test2", {"value": "green"})

    def test_receive_empty_returns_none_pair(self, layer):
        assert layer.receive(["empty_test"]) == (None, None)

    def test_receive_many_is_receive(self, layer):
        layer.send("rm_test", {"n": 1})
        assert layer.receive_many(["rm_test"]) == ("rm_test", {"n": 1})

    def test_blocking_receive_gets_message_sent_later(self, layer):
        result = {}

        def receiver():
            result["got"] = layer.receive(["block_test"], block=True)

        thread = threading.Thread(target=receiver)
        thread.start()
        time.sleep(0.2)
        layer.send("block_test", {"late": True})
        thread.join(5)
        assert result["got"] == ("block_test", {"late": True})

    def test_single_process_receive(self, layer):
        layer.send("spr_test!a", {"value": "blue"})
        assert layer.receive(["spr_test!"]) == ("spr_test!a", {"value": "blue"})
        layer.send("spr_test!b", {"value": "green"})
        assert layer.receive(["spr_test!"]) == ("spr_test!b", {"value": "green"})

    def test_single_process_receive_error(self, layer):
        with pytest.raises(TypeError, match="spr_test!c"):
            layer.receive(["spr_test!c"])

    def test_fifo_on_process_and_single_reader_channels(self, layer):
        reader = layer.new_channel("fifo.test?")
        for i in range(5):
            layer.send(f"fifo_test!{'ab'[i % 2]}", {"i": i})
            layer.send(reader, {"i": i})
        assert [layer.receive(["fifo_test!"])[1]["i"] for _ in range(5)] == list(range(5))
        assert [layer.receive([reader])[1]["i"] for _ in range(5)] == list(range(5))

    def test_message_expiry(self, layer):
        layer.send("me_test", {"value": "blue"})
        time.sleep(EXPIRY_DELAY)
        assert layer.receive(["me_test"]) == (None, None)

    def test_message_alteration_after_send(self, layer):
        message = {"value": [1, 2, 3]}
        layer.send("mas_test", message)
        message["value"][0] = 123
        assert layer.receive(["mas_test"])[1]["value"] == [1, 2, 3]

    def test_strings(self, layer):
        message = {
            "bytes": b"\xc2\xa3",
            "control": b"\x00\x01\x02\xff",
            "text": "\u00a3",
            "astral": "\U0001f600 \u2603",
            "nested": {"list": [b"a", "a", 1, 1.5, True, None]},
        }
        layer.send("str_test", message)
        _, received = layer.receive(["str_test"])
        assert received == message
        assert isinstance(received["bytes"], bytes) and isinstance(received["text"], str)

    def test_tuples_become_lists(self, layer):
        layer.send("tuple_test", {"t": (1, (2, 3))})
        assert layer.receive(["tuple_test"])[1] == {"t": [1, [2, 3]]}

    def test_unserializable_message_is_a_type_error(self, layer):
        with pytest.raises(TypeError, match="serialized"):
            layer.send("bad_test", {"value": {1, 2}})
        with pytest.raises(TypeError, match="dict"):
            layer.send("bad_test", ["not", "a", "dict"])

    # -- new_channel ------------------------------------------------------------

    def test_new_channel_single_reader(self, layer):
        name1 = layer.new_channel("test.foo?")
        assert isinstance(name1, str) and name1.count("?") == 1 and not name1.endswith("?")
        layer.send(name1, {"value": "blue"})
        name2 = layer.new_channel("test.foo?")
        assert name2 != name1
        assert layer.receive([name1]) == (name1, {"value": "blue"})

    def test_new_channel_failures(self, layer):
        with pytest.raises(TypeError):
            layer.new_channel("test!")
        with pytest.raises(TypeError):
            layer.new_channel("test.foo")

    # -- names ------------------------------------------------------------------

    @pytest.mark.parametrize(
        "name", ["http.response!ab0def", "http.request.body?ab0def", "0.a_b-c?d_e-f.1", "a" * 99, "prefix!"]
    )
    def test_valid_channel_names(self, layer, name):
        layer.send(name, {"ok": 1})

    @pytest.mark.parametrize(
        "name", ["\u00e9t\u00e9", "a" * 100, "a?b?c", "a!b!c", "a+b", "", "a b", "a:b", b"bytes", None, 12]
    )
    def test_invalid_channel_names_raise_type_error_naming_them(self, layer, name):
        with pytest.raises(TypeError) as info:
            layer.send(name, {"ok": 1})
        assert repr(name)[:40] in str(info.value) or type(name).__name__ in str(info.value)

    @pytest.mark.parametrize("channels", [[], "a.string", None])
    def test_receive_needs_a_list_of_channels(self, layer, channels):
        with pytest.raises(TypeError):
            layer.receive(channels)

    @pytest.mark.parametrize("group", ["a?b", "a!b", "a=b", "", "x" * 100])
    @needs("groups")
    def test_invalid_group_names(self, layer, group):
        with pytest.raises(TypeError):
            layer.group_add(group, "channel")
        with pytest.raises(TypeError):
            layer.send_group(group, {"v": 1})

    # -- groups -----------------------------------------------------------------

    @needs("groups")
    def test_groups(self, layer):
        for name in ("tg_test", "tg_test2", "tg_test3"):
            layer.group_add("tgroup", name)
        layer.group_add("tgroup", "tg_test")  # idempotent
        layer.group_discard("tgroup", "tg_test2")
        layer.group_discard("tgroup", "never_added")
        layer.send_group("tgroup", {"value": "orange"})
        assert layer.receive(["tg_test"]) == ("tg_test", {"value": "orange"})
        assert layer.receive(["tg_test"]) == (None, None)
        assert layer.receive(["tg_test3"]) == ("tg_test3", {"value": "orange"})
        assert layer.receive(["tg_test2"]) == (None, None)

    @needs("groups")
    def test_groups_process(self, layer):
        for name in ("tgp!test", "tgp!test2", "tgp!test3"):
            layer.group_add("tgroup", name)
        layer.group_discard("tgroup", "tgp!test2")
        layer.send_group("tgroup", {"value": "orange"})
        got = {layer.receive(["tgp!"])[0], layer.receive(["tgp!"])[0]}
        assert got == {"tgp!test", "tgp!test3"}
        assert layer.receive(["tgp!"]) == (None, None)

    @needs("groups")
    def test_group_fan_out_to_many_sockets_of_one_process(self, layer):
        members = {f"fan!s{i}" for i in range(50)}
        for member in members:
            layer.group_add("fan", member)
        layer.send_group("fan", {"v": "all"})
        received = [layer.receive(["fan!"]) for _ in range(50)]
        assert {channel for channel, _ in received} == members
        assert all(message == {"v": "all"} for _, message in received)
        assert layer.receive(["fan!"]) == (None, None)

    @needs("groups", "batch")
    def test_group_membership_changes_between_sends_are_seen(self, layer):
        def round_():
            layer.send_group("chg", {"v": 1})
            return sorted(channel for channel, _ in layer.receive_batch(["chg!", "chg.plain"], 100))

        layer.group_add("chg", "chg!a")
        assert round_() == ["chg!a"]
        layer.group_add("chg", "chg!b")
        layer.group_add("chg", "chg.plain")
        assert round_() == ["chg!a", "chg!b", "chg.plain"]
        layer.group_add("chg", "chg!b")  # re-adding changes nothing
        assert round_() == ["chg!a", "chg!b", "chg.plain"]
        layer.group_discard("chg", "chg!a")
        assert round_() == ["chg!b", "chg.plain"]
        layer.group_discard("chg", "chg!b")
        layer.group_discard("chg", "chg.plain")
        assert round_() == []

    @needs("groups", "batch")
    def test_group_expiry_is_per_member_within_one_process(self, layer):
        layer.group_add("gepm", "gepm!old")
        time.sleep(layer.group_expiry * 0.6)
        layer.group_add("gepm", "gepm!new")
        layer.send_group("gepm", {"v": 1})
        assert sorted(c for c, _ in layer.receive_batch(["gepm!"], 10)) == ["gepm!new", "gepm!old"]
        time.sleep(layer.group_expiry * 0.6)
        layer.send_group("gepm", {"v": 2})
        assert [c for c, _ in layer.receive_batch(["gepm!"], 10)] == ["gepm!new"]
        assert list(layer.group_channels("gepm")) == ["gepm!new"]

    @needs("groups")
    def test_group_channels(self, layer):
        for name in ("tgc_test", "tgc_test2", "tgc!three"):
            layer.group_add("tgcgroup", name)
        assert set(layer.group_channels("tgcgroup")) == {"tgc_test", "tgc_test2", "tgc!three"}
        layer.group_discard("tgcgroup", "tgc_test")
        assert set(layer.group_channels("tgcgroup")) == {"tgc_test2", "tgc!three"}
        assert list(layer.group_channels("no_such_group")) == []

    @needs("groups")
    def test_group_expiry(self, layer):
        assert layer.group_expiry == 2
        layer.group_add("tge_group", "tge_test")
        time.sleep(layer.group_expiry + 1)
        layer.send_group("tge_group", {"value": "blue"})
        assert layer.receive(["tge_test"]) == (None, None)
        assert list(layer.group_channels("tge_group")) == []

    @needs("groups")
    def test_group_message_eviction(self, layer):
        layer.group_add("tgme_group", "tgme_test")
        layer.group_add("tgme_group", "tgme_alive")
        layer.send_group("tgme_group", {"value": "first"})
        assert layer.receive(["tgme_alive"])[1] == {"value": "first"}
        time.sleep(EXPIRY_DELAY)
        layer.send_group("tgme_group", {"value": "second"})
        assert layer.receive(["tgme_test"]) == (None, None)
        assert layer.receive(["tgme_alive"])[1] == {"value": "second"}
        assert set(layer.group_channels("tgme_group")) == {"tgme_alive"}

    # -- flush ------------------------------------------------------------------

    @needs("flush")
    def test_flush(self, layer):
        layer.send("fl_test", {})
        layer.flush()
        assert layer.receive(["fl_test"]) == (None, None)

    @needs("groups", "flush")
    def test_flush_groups(self, layer):
        layer.group_add("tfg_group", "tfg_test")
        layer.flush()
        layer.send_group("tfg_group", {"value": "blue"})
        assert layer.receive(["tfg_test"]) == (None, None)

    # -- capacity ----------------------------------------------------------------

    def test_capacity(self, layer):
        for _ in range(5):
            layer.send("cap_test", {"hello": "there"})
        with pytest.raises(ChannelFull, match="cap_test"):
            layer.send("cap_test", {"hello": "there"})
        assert layer.ChannelFull is ChannelFull

    def test_capacity_frees_as_messages_are_read(self, layer):
        for _ in range(5):
            layer.send("capr_test", {})
        layer.receive(["capr_test"])
        layer.send("capr_test", {})

    def test_capacity_counts_expired_messages_as_free(self, layer):
        for _ in range(5):
            layer.send("cape_test", {"old": True})
        time.sleep(EXPIRY_DELAY)
        layer.send("cape_test", {"old": False})
        assert layer.receive(["cape_test"]) == ("cape_test", {"old": False})

    def test_capacity_process(self, layer):
        # Every channel of one process shares its queue's capacity, by default PROCESS_QUEUE_CAPACITY.
        capacity = layer.get_capacity("capp!x")
        assert capacity == max(5, PROCESS_QUEUE_CAPACITY)
        # At once: the fixture's messages expire after 1 s, and an expired message frees its place.
        if supports(layer, "batch"):
            layer.send_many("capp!0", [{}] * (capacity - 1))
            layer.send("capp!1", {})
        else:
            for i in range(capacity):
                layer.send(f"capp!{i % 7}", {})
        with pytest.raises(ChannelFull):
            layer.send("capp!final", {"hello": "there"})
        assert layer.get_capacity("capq_test") == 5

    @needs("groups")
    def test_group_send_reaches_a_process_queue_over_the_normal_capacity(self, layer):
        # A busy server holds more than `capacity` replies: a broadcast still reaches all its sockets.
        for i in range(20):
            layer.send(f"capg!{i}", {"reply": i})
        for i in range(3):
            layer.group_add("capg_group", f"capg!{i}")
        layer.send_group("capg_group", {"hello": "all"})
        got = layer.receive_batch(["capg!"], 100) if supports(layer, "batch") else []
        while len(got) < 23:
            channel, message = layer.receive(["capg!"])
            if channel is None:
                break
            got.append((channel, message))
        assert sorted(c for c, m in got if m == {"hello": "all"}) == ["capg!0", "capg!1", "capg!2"]

    @needs("groups", "statistics")
    def test_capacity_group(self, layer):
        layer.group_add("tcg_group", "tcg_test")
        for _ in range(6):
            layer.send_group("tcg_group", {"hello": "there"})
        assert layer.global_statistics()["channel_full_count"] >= 1

    # -- sizes and errors --------------------------------------------------------

    def test_exceptions(self, layer):
        assert layer.MessageTooLarge is MessageTooLarge
        assert issubclass(layer.ChannelFull, Exception)

    def test_message_too_large(self, layer):
        with pytest.raises(MessageTooLarge, match="1048576"):
            layer.send("big_test", {"data": b"x" * (1024 * 1024)})
        if supports(layer, "groups"):
            with pytest.raises(MessageTooLarge):
                layer.send_group("big_group", {"data": b"x" * (1024 * 1024)})
        layer.send("big_test", {"data": b"x" * (1024 * 1024 - 100)})
        assert len(layer.receive(["big_test"])[1]["data"]) == 1024 * 1024 - 100

    # -- statistics ---------------------------------------------------------------

    @needs("statistics")
    def test_statistics(self, layer):
        for _ in range(3):
            layer.send("st_test", {})
        layer.send("st_other!x", {})
        assert layer.global_statistics() == {"messages_count": 4, "channel_full_count": 0}
        stats = layer.channel_statistics("st_test")
        assert stats["messages_count"] == 3
        assert stats["channel_full_count"] == 0
        assert stats["messages_pending"] == 3
        assert 0 <= stats["messages_max_age"] < 1

    @needs("statistics")
    def test_channel_full_statistics(self, layer):
        for _ in range(5):
            layer.send("stf_test", {})
        for _ in range(4):
            with pytest.raises(ChannelFull):
                layer.send("stf_test", {})
        assert layer.global_statistics() == {"messages_count": 5, "channel_full_count": 4}
        stats = layer.channel_statistics("stf_test")
        assert (stats["messages_count"], stats["channel_full_count"]) == (5, 4)

    # -- batches ------------------------------------------------------------------

    @needs("batch")
    def test_send_many_and_receive_batch(self, layer):
        layer.send_many("batch_test", [{"i": i} for i in range(4)])
        got = layer.receive_batch(["batch_test"], 3)
        assert [m["i"] for _, m in got] == [0, 1, 2] or sorted(m["i"] for _, m in got) == [0, 1, 2]
        rest = layer.receive_batch(["batch_test"], 10)
        assert len(rest) == 1 and layer.receive_batch(["batch_test"], 10) == []

    @needs("batch")
    def test_send_many_is_all_or_nothing(self, layer):
        layer.send_many("batchf_test", [{"i": i} for i in range(3)])
        with pytest.raises(ChannelFull):
            layer.send_many("batchf_test", [{"i": i} for i in range(3)])
        assert len(layer.receive_batch(["batchf_test"], 10)) == 3

    @needs("batch")
    def test_receive_batch_blocks_for_the_first_message(self, layer):
        timer = threading.Timer(0.2, layer.send, ("batchb_test", {"late": 1}))
        timer.start()
        got = layer.receive_batch(["batchb_test"], 10, block=True)
        timer.join()
        assert got == [("batchb_test", {"late": 1})]

    # -- the ordering extension ------------------------------------------------

    @needs("ordering")
    def test_ordering_runs_next_parks_later_and_releases_in_order(self, layer):
        reply = "order.reply!conn1"
        assert layer.order_claim(reply, 0, "websocket.connect", {"order": 0}, 10, 100) == "run"
        assert layer.order_claim(reply, 2, "websocket.receive", {"order": 2, "text": "b"}, 10, 100) == "parked"
        assert layer.order_claim(reply, 3, "websocket.disconnect", {"order": 3}, 10, 100) == "parked"
        assert layer.order_advance(reply, 0) is None  # 1 has not arrived yet
        assert layer.order_claim(reply, 1, "websocket.receive", {"order": 1, "text": "a"}, 10, 100) == "run"
        assert layer.order_advance(reply, 1) == ("websocket.receive", {"order": 2, "text": "b"})
        assert layer.order_advance(reply, 2) == ("websocket.disconnect", {"order": 3})
        assert layer.order_advance(reply, 3) is None
        layer.order_forget(reply)
        # A forgotten connection starts again from 0.
        assert layer.order_claim(reply, 0, "websocket.connect", {"order": 0}, 10, 100) == "run"

    @needs("ordering")
    def test_ordering_drops_duplicates_as_stale(self, layer):
        reply = "order.reply!conn2"
        assert layer.order_claim(reply, 0, "websocket.connect", {}, 10, 100) == "run"
        layer.order_advance(reply, 0)
        assert layer.order_claim(reply, 0, "websocket.connect", {}, 10, 100) == "stale"
        assert layer.order_claim(reply, 3, "websocket.receive", {}, 10, 100) == "parked"
        assert layer.order_claim(reply, 3, "websocket.receive", {}, 10, 100) == "stale"

    @needs("ordering")
    def test_ordering_gives_up_when_the_gap_does_not_move_or_too_many_wait(self, layer):
        reply = "order.reply!conn3"
        assert layer.order_claim(reply, 2, "websocket.receive", {}, 0.2, 100) == "parked"
        time.sleep(0.4)
        assert layer.order_claim(reply, 3, "websocket.receive", {}, 0.2, 100) == "stuck"
        assert layer.order_claim(reply, 0, "websocket.connect", {}, 0.2, 100) == "dead"
        assert layer.order_advance(reply, 0) is None
        other = "order.reply!conn4"
        assert layer.order_claim(other, 1, "websocket.receive", {}, 10, 2) == "parked"
        assert layer.order_claim(other, 2, "websocket.receive", {}, 10, 2) == "parked"
        assert layer.order_claim(other, 3, "websocket.receive", {}, 10, 2) == "stuck"

    @needs("ordering")
    def test_ordering_progress_resets_the_gap_clock(self, layer):
        reply = "order.reply!conn5"
        assert layer.order_claim(reply, 0, "c", {}, 0.5, 100) == "run"
        assert layer.order_claim(reply, 2, "c", {}, 0.5, 100) == "parked"
        time.sleep(0.3)
        assert layer.order_advance(reply, 0) is None  # progress: 1 is next now
        time.sleep(0.3)
        assert layer.order_claim(reply, 3, "c", {}, 0.5, 100) == "parked"

    @needs("ordering")
    def test_ordering_claims_from_many_threads_release_every_message_once_in_order(self, layer):
        """Workers racing claim/advance: each message runs exactly once, in order."""
        assert race_ordered_claims([layer], "order.reply!race", 60, 10) == list(range(60))

    @needs("batch")
    def test_receive_batch_timeout_bounds_the_wait_to_the_millisecond(self, layer):
        started = time.monotonic()
        assert layer.receive_batch(["batcht_test"], 10, block=True, timeout=0.3) == []
        waited = time.monotonic() - started
        assert 0.28 <= waited < 0.8, waited
        timer = threading.Timer(0.1, layer.send, ("batcht_test", {"in": "time"}))
        timer.start()
        got = layer.receive_batch(["batcht_test"], 10, block=True, timeout=2)
        timer.join()
        assert got == [("batcht_test", {"in": "time"})]
        layer.send("batcht_test", {"now": 1})
        assert layer.receive_batch(["batcht_test"], 10, block=True, timeout=0) == [("batcht_test", {"now": 1})]

    # -- the leases extension --------------------------------------------------

    @staticmethod
    def _disconnect(reply_channel: str, code: int = 1006) -> dict:
        return {"reply_channel": reply_channel, "path": "/", "order": 0, "code": code}

    @staticmethod
    def _drain(layer, channel: str) -> list[dict]:
        got = []
        while True:
            name, message = layer.receive([channel])
            if name is None:
                return got
            got.append(message)

    @needs("leases")
    def test_lease_renew_is_held_and_lists_the_holder_with_its_info(self, layer):
        assert layer.lease_renew("lsr!", 5, {"kind": "interface-server", "pid": 1}) == "held"
        assert layer.lease_renew("lsr!", 5, {"kind": "interface-server", "pid": 1, "connections": 2}) == "held"
        assert layer.lease_holders()["lsr!"] == {"kind": "interface-server", "pid": 1, "connections": 2}
        layer.lease_end("lsr!")
        assert "lsr!" not in layer.lease_holders()
        assert layer.lease_renew("lsr!", 5) == "held"  # after a clean end, a new registration

    @needs("leases")
    def test_lease_release_sends_the_disconnect_exactly_once_and_only_if_tracked(self, layer):
        layer.lease_renew("lsx!", 5)
        layer.lease_track("lsx!", "lsx!a", "lsx.disconnect", self._disconnect("lsx!a"))
        message = dict(self._disconnect("lsx!a", 1000), order=3)
        assert layer.lease_connections("lsx!") == ["lsx!a"]
        assert layer.lease_release("lsx!", "lsx!a", "lsx.disconnect", message) is True
        assert layer.lease_connections("lsx!") == []
        assert layer.lease_release("lsx!", "lsx!a", "lsx.disconnect", message) is False
        assert layer.lease_release("lsx!", "lsx!never", "lsx.disconnect", self._disconnect("lsx!never")) is False
        assert self._drain(layer, "lsx.disconnect") == [message]

    @needs("leases")
    def test_lease_release_is_not_refused_by_a_full_channel(self, layer):
        layer.lease_renew("lsf!", 5)
        layer.lease_track("lsf!", "lsf!a", "lsf.disconnect", self._disconnect("lsf!a"))
        for _ in range(layer.get_capacity("lsf.disconnect")):
            layer.send("lsf.disconnect", {"filler": True})
        with pytest.raises(ChannelFull):
            layer.send("lsf.disconnect", {"filler": True})
        assert layer.lease_release("lsf!", "lsf!a", "lsf.disconnect", self._disconnect("lsf!a", 1000))
        assert self._drain(layer, "lsf.disconnect")[-1] == self._disconnect("lsf!a", 1000)

    @needs("leases")
    def test_lease_sweep_sends_each_tracked_disconnect_once_after_expiry(self, layer):
        layer.lease_renew("lsw!", 0.3, {"kind": "interface-server"})
        for name in ("lsw!a", "lsw!b", "lsw!c"):
            layer.lease_track("lsw!", name, "lsw.disconnect", self._disconnect(name))
        layer.lease_release("lsw!", "lsw!c", "lsw.disconnect", self._disconnect("lsw!c", 1000))
        assert layer.lease_sweep("sweeper-1", 2) == []  # not expired yet
        time.sleep(0.5)
        assert "lsw!" not in layer.lease_holders()
        assert layer.lease_sweep("sweeper-1", 2) == ["lsw!"]
        assert layer.last_sweep == {"lsw!": 2}
        assert layer.lease_sweep("sweeper-1", 2) == []
        got = self._drain(layer, "lsw.disconnect")
        assert sorted(m["reply_channel"] for m in got) == ["lsw!a", "lsw!b", "lsw!c"]
        assert [m["code"] for m in got if m["reply_channel"] != "lsw!c"] == [1006, 1006]
        # The holder comes back: told it was swept (close, send nothing), then held again.
        assert layer.lease_release("lsw!", "lsw!a", "lsw.disconnect", self._disconnect("lsw!a", 1000)) is False
        assert layer.lease_renew("lsw!", 5) == "swept"
        assert layer.lease_renew("lsw!", 5) == "held"
        assert self._drain(layer, "lsw.disconnect") == []

    @needs("leases")
    def test_lease_renewed_after_expiry_but_before_a_sweep_is_still_held(self, layer):
        layer.lease_renew("lsl!", 0.2)
        layer.lease_track("lsl!", "lsl!a", "lsl.disconnect", self._disconnect("lsl!a"))
        time.sleep(0.35)
        assert layer.lease_renew("lsl!", 5) == "held"
        assert layer.lease_sweep("sweeper-1", 2) == []
        assert self._drain(layer, "lsl.disconnect") == []
        assert layer.lease_release("lsl!", "lsl!a", "lsl.disconnect", self._disconnect("lsl!a", 1000)) is True

    @needs("leases")
    def test_lease_sweep_is_done_by_the_elected_sweeper_only(self, layer):
        layer.lease_renew("lse!", 0.2)
        layer.lease_track("lse!", "lse!a", "lse.disconnect", self._disconnect("lse!a"))
        assert layer.lease_sweep("sweeper-a", 0.6) == []  # elected, nothing expired yet
        time.sleep(0.3)
        assert layer.lease_sweep("sweeper-b", 0.6) == []  # a holds the election
        assert self._drain(layer, "lse.disconnect") == []
        assert layer.lease_sweep("sweeper-a", 0.6) == ["lse!"]
        layer.lease_renew("lse2!", 0.1)
        layer.lease_track("lse2!", "lse2!a", "lse.disconnect", self._disconnect("lse2!a"))
        time.sleep(0.7)  # a stopped calling: its election lapsed
        assert layer.lease_sweep("sweeper-b", 0.6) == ["lse2!"]
        assert sorted(m["reply_channel"] for m in self._drain(layer, "lse.disconnect")) == ["lse!a", "lse2!a"]
        # A sweeper that ends its lease resigns: the next one need not wait for the election to lapse.
        layer.lease_renew("sweeper-b", 5)
        layer.lease_end("sweeper-b")
        layer.lease_renew("lse3!", 0.1)
        layer.lease_track("lse3!", "lse3!a", "lse.disconnect", self._disconnect("lse3!a"))
        time.sleep(0.2)
        assert layer.lease_sweep("sweeper-c", 0.6) == ["lse3!"]

    @needs("leases", "flush")
    def test_lease_renew_says_lost_when_the_layer_lost_its_state(self, layer):
        assert layer.lease_renew("lsg!", 5) == "held"
        layer.lease_track("lsg!", "lsg!a", "lsg.disconnect", self._disconnect("lsg!a"))
        layer.flush()  # what a Redis restart without persistence does
        layer.lease_track("lsg!", "lsg!new", "lsg.disconnect", self._disconnect("lsg!new"))  # opened since
        assert layer.lease_renew("lsg!", 5) == "lost"
        assert layer.lease_connections("lsg!") == ["lsg!new"]
        assert layer.lease_renew("lsg!", 5) == "held"
        assert layer.lease_release("lsg!", "lsg!a", "lsg.disconnect", self._disconnect("lsg!a")) is False

    @needs("leases", "ordering")
    def test_swept_disconnect_carries_the_order_an_ordered_consumer_runs(self, layer):
        reply = "lso!a"
        layer.lease_renew("lso!", 0.2)
        layer.lease_track("lso!", reply, "lso.disconnect", self._disconnect(reply))
        for order in range(3):  # connect and two receives ran
            assert layer.order_claim(reply, order, "x", {}, 5, 10) == "run"
            assert layer.order_advance(reply, order) is None
        layer.lease_track("lso!", "lso!b", "lso.disconnect", self._disconnect("lso!b"))  # no ordering state
        time.sleep(0.3)
        assert layer.lease_sweep("sweeper-1", 2) == ["lso!"]
        got = {m["reply_channel"]: m for m in self._drain(layer, "lso.disconnect")}
        assert got[reply]["order"] == 3
        assert layer.order_claim(reply, got[reply]["order"], "lso.disconnect", got[reply], 5, 10) == "run"
        assert got["lso!b"]["order"] == 0

    # -- the inspection and queue_wait extensions (for operators) ----------------

    @staticmethod
    def _by_name(rows: list[dict], key: str) -> dict[str, dict]:
        return {row[key]: row for row in rows}

    @needs("inspection")
    def test_inspect_queues_lists_the_waiting_messages_fullest_first(self, layer):
        assert layer.inspect_queues() == []
        for i in range(3):
            layer.send("iq.full", {"i": i})
        layer.send("iq.one", {})
        layer.send("iqp!a", {})
        layer.send("iqp!b", {})
        single = layer.new_channel("iq.reply?")
        layer.send(single, {})
        time.sleep(0.2)
        layer.send("iq.one", {})  # the age is the oldest message's
        queues = layer.inspect_queues()
        assert [q["pending"] for q in queues] == sorted((q["pending"] for q in queues), reverse=True)
        got = self._by_name(queues, "channel")
        assert set(got) == {"iq.full", "iq.one", "iqp!", single}
        assert {name: q["pending"] for name, q in got.items()} == {"iq.full": 3, "iq.one": 2, "iqp!": 2, single: 1}
        for name, q in got.items():
            assert 0.15 <= q["oldest_age"] < 1, (name, q)
            assert q["capacity"] == layer.get_capacity(name)
        assert [q["channel"] for q in layer.inspect_queues(limit=1)] == ["iq.full"]
        assert len(layer.inspect_queues(limit=2)) == 2
        # Read messages leave the list (expired ones do not count: see the groups test, which waits anyway).
        assert len(self._drain(layer, "iq.full")) == 3
        assert "iq.full" not in self._by_name(layer.inspect_queues(), "channel")

    @needs("inspection", "groups")
    def test_inspect_groups_counts_live_members_largest_first(self, layer):
        assert layer.inspect_groups() == []
        layer.send("igx.expires", {})
        for i in range(6):
            layer.group_add("ig.big", f"igp!s{i}")  # sockets of one process
        for i in range(4):
            layer.group_add("ig.big", f"ig.plain{i}")  # plain channels, spread over shards
        layer.group_add("ig.small", "igp!s0")
        layer.group_add("ig.small", "ig.plain0")
        layer.group_add("ig.one", "igq!x")
        groups = layer.inspect_groups()
        assert groups == [
            {"group": "ig.big", "members": 10},
            {"group": "ig.small", "members": 2},
            {"group": "ig.one", "members": 1},
        ]
        assert layer.inspect_groups(limit=2) == groups[:2]
        layer.group_discard("ig.big", "igp!s5")
        layer.group_discard("ig.big", "ig.plain3")
        layer.group_discard("ig.one", "igq!x")
        assert layer.inspect_groups() == [{"group": "ig.big", "members": 8}, {"group": "ig.small", "members": 2}]
        # Membership lasts group_expiry (2 s): a member added again stays, the others go.
        time.sleep(1.2)
        layer.group_add("ig.small", "igp!s0")
        time.sleep(1.0)
        assert layer.inspect_groups() == [{"group": "ig.small", "members": 1}]
        assert layer.inspect_queues() == []  # igx.expires expired (after 1 s) unread: not waiting any more

    @needs("queue_wait")
    def test_last_queue_waits_gives_each_received_message_its_wait(self, layer):
        layer.send("qw.test", {"n": 1})
        time.sleep(0.25)
        assert layer.receive(["qw.test"]) == ("qw.test", {"n": 1})
        (wait,) = layer.last_queue_waits()
        assert 0.2 <= wait < 1
        layer.send("qw.test", {"n": 2})
        assert layer.receive(["qw.test"])[0] == "qw.test"
        (fresh,) = layer.last_queue_waits()
        assert 0 <= fresh < 0.2
        assert layer.receive(["qw.test"]) == (None, None)
        assert layer.last_queue_waits() == []
        # Per thread: another thread's receive leaves this thread's figures alone.
        layer.send("qw.test", {"n": 3})
        time.sleep(0.1)
        layer.receive(["qw.test"])
        mine = layer.last_queue_waits()
        thread = threading.Thread(target=lambda: (layer.send("qw.other", {}), layer.receive(["qw.other"])))
        thread.start()
        thread.join()
        assert layer.last_queue_waits() == mine and len(mine) == 1

    @needs("queue_wait", "batch", "groups")
    def test_last_queue_waits_of_a_batch_and_of_fanned_out_group_messages(self, layer):
        layer.send("qwb.old", {})
        time.sleep(0.3)
        layer.send_many("qwb.new", [{"i": 0}, {"i": 1}])
        got = layer.receive_batch(["qwb.old"], 10) + layer.receive_batch(["qwb.new"], 10)
        assert len(got) == 3
        waits = layer.last_queue_waits()
        assert len(waits) == 2 and all(0 <= w < 0.25 for w in waits)  # the last call's messages only
        assert layer.receive_batch(["qwb.old", "qwb.new"], 10) == [] and layer.last_queue_waits() == []
        for local in ("a", "b", "c"):
            layer.group_add("qwb.group", f"qwbp!{local}")
        layer.send_group("qwb.group", {"hello": 1})
        time.sleep(0.3)
        first = layer.receive_batch(["qwbp!"], 1)
        assert len(first) == 1 and len(layer.last_queue_waits()) == 1
        assert 0.25 <= layer.last_queue_waits()[0] < 1
        time.sleep(0.1)
        rest = layer.receive_batch(["qwbp!"], 10)  # what the first read kept for this process
        assert len(rest) == 2
        assert [round(w, 1) >= 0.3 for w in layer.last_queue_waits()] == [True, True]


def race_ordered_claims(layers: list, reply: str, count: int, timeout: float) -> list[int]:
    """One thread per order number, started last-first, each claiming through `layers[order % len]` and
    advancing while released messages follow: the orders in the sequence they ran."""
    ran: list[int] = []
    lock = threading.Lock()

    def handle(order: int) -> None:
        layer = layers[order % len(layers)]
        if layer.order_claim(reply, order, "c", {"order": order}, 10, 1000) != "run":
            return
        current = order
        while True:
            with lock:
                ran.append(current)
            released = layer.order_advance(reply, current)
            if released is None:
                return
            current = released[1]["order"]

    threads = [threading.Thread(target=handle, args=(n,)) for n in reversed(range(count))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return ran
