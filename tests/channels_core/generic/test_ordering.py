"""enforce_ordering in process, through the test helpers (the 4-process soak is in tests/stack)."""

from __future__ import annotations

import time

from channels_core.sessions import channel_session, enforce_ordering, session_for_reply_channel
from channels_core.test import ChannelTestCase, WSClient, apply_routes
from routing import route

seen: list = []


@enforce_ordering
def connect(message):
    message.reply_channel.send({"accept": True})


@enforce_ordering
@channel_session
def receive(message):
    if message["text"] == "boom":
        raise RuntimeError("boom")
    message.channel_session["last"] = message["text"]
    seen.append(message["text"])
    message.reply_channel.send({"text": message["text"]})


@enforce_ordering
def disconnect(message):
    seen.append("bye")


@enforce_ordering(timeout=0.2, max_parked=3)
def impatient(message):
    seen.append(message["text"])


ROUTES = [
    route("websocket.connect", connect),
    route("websocket.receive", receive, path=r"^/$"),
    route("websocket.receive", impatient, path=r"^/impatient/$"),
    route("websocket.disconnect", disconnect),
]


@apply_routes(ROUTES)
class EnforceOrderingTests(ChannelTestCase):
    def setUp(self):
        seen.clear()

    def connected(self):
        client = WSClient(ordered=True)
        client.send_and_consume("websocket.connect")
        return client

    def send_out_of_order(self, client, texts, order, path="/"):
        """Send `texts` with explicit orders (e.g. [2, 3, 1]) and consume them as they arrive."""
        for text, n in zip(texts, order, strict=True):
            client.channel_layer.send(
                "websocket.receive",
                {"reply_channel": client.reply_channel, "path": path, "order": n, "text": text},
            )
        for _ in texts:
            client.consume("websocket.receive")

    def test_later_frames_wait_and_run_in_order_when_the_gap_fills(self):
        client = self.connected()
        self.send_out_of_order(client, ["c", "d", "a", "b"], [3, 4, 1, 2])
        self.assertEqual(seen, ["a", "b", "c", "d"])
        self.assertEqual([client.receive(json=False) for _ in range(4)], ["a", "b", "c", "d"])
        self.assertEqual(session_for_reply_channel(client.reply_channel)["last"], "d")

    def test_a_failing_consumer_does_not_stall_its_socket(self):
        client = self.connected()
        with self.assertRaisesRegex(RuntimeError, "boom"):  # the worker would log it and go on
            self.send_out_of_order(client, ["after", "boom"], [2, 1])
        # "boom" failed, but it advanced the order, and the frame it released ran.
        self.assertEqual(seen, ["after"])
        self.assertEqual(client.receive(json=False), "after")

    def test_duplicates_are_dropped(self):
        client = self.connected()
        self.send_out_of_order(client, ["a"], [1])
        with self.assertLogs("channels_core.ordering", "WARNING"):
            self.send_out_of_order(client, ["a again"], [1])
        self.assertEqual(seen, ["a"])

    def test_disconnect_forgets_the_state(self):
        client = self.connected()
        self.send_out_of_order(client, ["a"], [1])
        client.channel_layer.send("websocket.disconnect", {"reply_channel": client.reply_channel, "order": 2})
        client.consume("websocket.disconnect")
        self.assertEqual(seen, ["a", "bye"])
        # A new socket with the same name would start from 0 again.
        self.assertEqual(client.channel_layer.order_claim(client.reply_channel, 0, "c", {}, 1, 10), "run")

    def test_a_gap_that_never_fills_closes_the_socket_with_a_reason(self):
        client = self.connected()
        self.send_out_of_order(client, ["x"], [2], path="/impatient/")
        time.sleep(0.3)
        with self.assertLogs("channels_core.ordering", "ERROR") as logs:
            self.send_out_of_order(client, ["y"], [3], path="/impatient/")
        self.assertIn("ordering cannot be restored", logs.output[0])
        self.assertEqual(client.receive(json=False), {"close": 1011})
        self.send_out_of_order(client, ["z"], [1], path="/impatient/")  # given up: dropped
        self.assertEqual(seen, [])

    def test_too_many_parked_frames_close_the_socket(self):
        client = self.connected()
        with self.assertLogs("channels_core.ordering", "ERROR"):
            self.send_out_of_order(client, ["2", "3", "4", "5"], [2, 3, 4, 5], path="/impatient/")
        self.assertEqual(client.receive(json=False), {"close": 1011})

    def test_messages_without_order_are_refused(self):
        client = WSClient()  # not ordered
        with self.assertRaisesRegex(ValueError, "integer `order`"):
            client.send_and_consume("websocket.connect")

    def test_slight_ordering_is_gone(self):
        with self.assertRaisesRegex(ValueError, "Slight ordering"):
            enforce_ordering(slight=True)
