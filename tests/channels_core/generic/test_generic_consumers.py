"""Generic consumers through the test helpers, the way an application's own tests would use them."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User

from channels_core import Group
from channels_core.exceptions import SendNotAvailableOnDemultiplexer
from channels_core.generic import WebsocketConsumer, WebsocketMultiplexer
from channels_core.test import ChannelTestCase, Client, HttpClient, WSClient, apply_routes
from routing import route, route_class

from . import consumers


@apply_routes([route_class(consumers.Counter)])
class BaseConsumerTests(ChannelTestCase):
    def test_method_mapping_and_channel_session(self):
        client = Client()
        client.send_and_consume("counter.add", {"by": 2})
        client.send_and_consume("counter.add", {"by": 3})
        client.send_and_consume("counter.show")
        self.assertEqual(client.receive(), {"n": 5})

    def test_channel_names_come_from_the_mapping(self):
        self.assertEqual(consumers.Counter.channel_names(), {"counter.add", "counter.show"})
        self.assertIs(Client().get_consumer_by_channel("counter.add"), consumers.Counter)

    def test_as_route_with_attrs_makes_a_subclass(self):
        r = consumers.Echo.as_route(attrs={"groups": ["other"]}, path=r"^/x/$")
        consumer = r.consumer
        self.assertTrue(issubclass(consumer, consumers.Echo))
        self.assertEqual(consumer.groups, ["other"])
        self.assertEqual(consumers.Echo.groups, ["echoers"])
        with self.assertRaises(TypeError):
            consumers.Echo.as_route(attrs=["groups"])


@apply_routes([consumers.Echo.as_route(path=r"^/echo/$"), consumers.Room.as_route(path=r"^/room/(?P<room>\w+)/$")])
class WebsocketConsumerTests(ChannelTestCase):
    def setUp(self):
        consumers.calls.clear()

    def test_connect_receive_disconnect(self):
        client = WSClient()
        client.send_and_consume("websocket.connect", path="/echo/")  # asserts {"accept": True}
        self.assertEqual(consumers.calls, [("connect", "/echo/", {})])
        client.send_and_consume("websocket.receive", text="hello", path="/echo/")
        self.assertEqual(client.receive(json=False), "HELLO")
        client.send_and_consume("websocket.receive", {"bytes": b"abc", "text": None}, path="/echo/")
        self.assertEqual(client.receive(json=False), {"bytes": b"cba"})
        client.send_and_consume("websocket.receive", text="close", path="/echo/")
        self.assertEqual(client.receive(json=False), {"close": True})
        client.send_and_consume("websocket.disconnect", {"code": 1000}, path="/echo/")
        self.assertEqual(consumers.calls[-1], ("disconnect", 1000))

    def test_groups_joined_on_connect_and_left_on_disconnect(self):
        first, second = WSClient(), WSClient()
        first.send_and_consume("websocket.connect", path="/echo/")
        second.send_and_consume("websocket.connect", path="/echo/")
        consumers.Echo.group_send("echoers", text="to all")
        self.assertEqual(first.receive(json=False), "to all")
        self.assertEqual(second.receive(json=False), "to all")
        second.send_and_consume("websocket.disconnect", {"code": 1001}, path="/echo/")
        Group("echoers").send({"text": "again"})
        self.assertEqual(first.receive(json=False), "again")
        self.assertIsNone(second.receive())

    def test_connection_groups_get_the_route_kwargs(self):
        client = WSClient()
        client.send_and_consume("websocket.connect", path="/room/blue/")
        WebsocketConsumer.group_send("room-blue", text="blue news")
        self.assertEqual(client.receive(json=False), "blue news")

    def test_slight_ordering_is_refused_at_routing_time(self):
        class Old(WebsocketConsumer):
            slight_ordering = True

        with self.assertRaisesRegex(ValueError, "Slight ordering"):
            route_class(Old)

    def test_send_needs_text_or_bytes(self):
        class Empty(WebsocketConsumer):
            def receive(self, text=None, bytes=None, **kwargs):
                self.send()

        with apply_routes([route_class(Empty)]):
            client = WSClient()
            client.send_and_consume("websocket.connect")
            with self.assertRaisesRegex(ValueError, "text or bytes"):
                client.send_and_consume("websocket.receive", text="x")


@apply_routes(
    [
        consumers.WhoAmI.as_route(path=r"^/whoami/$"),
        consumers.Shout.as_route(path=r"^/shout/$"),
    ]
)
class JsonWebsocketConsumerTests(ChannelTestCase):
    def test_http_user_reaches_every_message(self):
        User.objects.create_user("ada", password="pw")
        client = WSClient()
        self.assertTrue(client.login(username="ada", password="pw"))
        client.send_and_consume("websocket.connect", path="/whoami/")
        client.send_and_consume("websocket.receive", text={"q": 1}, path="/whoami/")
        self.assertEqual(client.receive(), {"user": "ada", "got": {"q": 1}})

    def test_anonymous_without_login(self):
        client = WSClient()
        client.send_and_consume("websocket.connect", path="/whoami/")
        client.send_and_consume("websocket.receive", text={"q": 2}, path="/whoami/")
        self.assertEqual(client.receive(), {"user": "", "got": {"q": 2}})

    def test_encode_json_is_overridable_and_bad_frames_reach_invalid_frame(self):
        client = WSClient()
        client.send_and_consume("websocket.connect", path="/shout/")
        client.send_and_consume("websocket.receive", text={"a": "b"}, path="/shout/")
        self.assertEqual(client.receive(), {"A": "B"})
        client.send_and_consume("websocket.receive", text="not json", path="/shout/")
        reply = client.get_next_message(client.reply_channel).content  # the whole message: text and close
        self.assertEqual(reply["close"], 4000)
        self.assertIn("NOT VALID JSON", reply["text"])
        client.send_and_consume("websocket.receive", {"bytes": b"\x00", "text": None}, path="/shout/")
        self.assertIn("BINARY FRAME", client.receive(json=False))

    def test_http_client_is_the_1x_name(self):
        self.assertIs(HttpClient, WSClient)


@apply_routes([consumers.Demux.as_route(path=r"^/mux/$")])
class DemultiplexerTests(ChannelTestCase):
    def setUp(self):
        consumers.calls.clear()

    def connect(self):
        client = WSClient()
        client.send_and_consume("websocket.connect", path="/mux/")
        # Rude keeps JsonWebsocketConsumer's connect(), which accepts too (harmless on an open socket, as in 1.x).
        self.assertEqual(client.receive(json=False), {"accept": True})
        self.assertIsNone(client.receive())
        return client

    def test_connect_is_accepted_and_reaches_every_stream(self):
        self.connect()
        self.assertIn(("ping-connect", "ping"), consumers.calls)

    def test_frames_go_to_their_stream_and_answers_come_back_framed(self):
        client = self.connect()
        client.send_and_consume("websocket.receive", text={"stream": "ping", "payload": {"n": 7}}, path="/mux/")
        self.assertEqual(client.receive(), {"stream": "ping", "payload": {"pong": 7}})
        client.send_and_consume("websocket.receive", text={"stream": "count", "payload": {"k": 1}}, path="/mux/")
        self.assertEqual(client.receive(), {"stream": "count", "payload": {"count": len('{"k": 1}')}})

    def test_unknown_streams_and_bad_frames_are_dropped_with_a_warning(self):
        client = self.connect()
        with self.assertLogs("channels_core", "WARNING") as logs:
            client.send_and_consume("websocket.receive", text={"stream": "nope", "payload": {}}, path="/mux/")
            client.send_and_consume("websocket.receive", text={"payload": {}}, path="/mux/")
            client.send_and_consume("websocket.receive", text={"stream": "ping", "payload": [1]}, path="/mux/")
        self.assertEqual(len(logs.records), 3)
        self.assertIn("not mapped", logs.output[0])
        self.assertIsNone(client.receive())
        # The socket goes on working.
        client.send_and_consume("websocket.receive", text={"stream": "ping", "payload": {"n": 1}}, path="/mux/")
        self.assertEqual(client.receive(), {"stream": "ping", "payload": {"pong": 1}})

    def test_a_stream_consumer_cannot_send_directly(self):
        client = self.connect()
        with self.assertRaises(SendNotAvailableOnDemultiplexer):
            client.send_and_consume("websocket.receive", text={"stream": "rude", "payload": {}}, path="/mux/")

    def test_disconnect_reaches_every_stream(self):
        client = self.connect()
        client.send_and_consume("websocket.disconnect", {"code": 1000}, path="/mux/")
        self.assertIn(("ping-disconnect", "ping"), consumers.calls)

    def test_multiplexer_group_send(self):
        client = self.connect()
        client.join_group("news")
        WebsocketMultiplexer.group_send("news", "ping", {"hello": "all"})
        self.assertEqual(json.loads(client.receive(json=False)), {"stream": "ping", "payload": {"hello": "all"}})

    def test_demultiplexer_itself_cannot_send(self):
        with self.assertRaises(SendNotAvailableOnDemultiplexer):
            consumers.Demux.group_send("news", "ping", {})


class HelperTests(ChannelTestCase):
    def test_get_next_message_and_require(self):
        Client().send("some.channel", {"a": 1})
        message = self.get_next_message("some.channel", require=True)
        self.assertEqual(message["a"], 1)
        self.assertIsNone(self.get_next_message("some.channel"))
        with self.assertRaises(AssertionError):
            self.get_next_message("some.channel", require=True)

    def test_wsclient_content_path_query_headers_and_order(self):
        client = WSClient(ordered=True)
        client.set_header("origin", "http://example.com")
        client.set_cookie("flavour", "mint")
        client.send("websocket.connect", path="/a/b?x=1")
        content = self.get_next_message("websocket.connect", require=True).content
        self.assertEqual((content["path"], content["query_string"], content["order"]), ("/a/b", "x=1", 0))
        headers = dict(content["headers"])
        self.assertEqual(headers[b"origin"], b"http://example.com")
        self.assertIn(b"flavour=mint", headers[b"cookie"])
        self.assertIn(b"sessionid=", headers[b"cookie"])
        client.send("websocket.receive", text={"j": 1})
        content = self.get_next_message("websocket.receive", require=True).content
        self.assertEqual((content["text"], content["order"]), ('{"j": 1}', 1))
        with self.assertRaises(ValueError):
            client.send("websocket.receive", {"order": 5})

    def test_consume_fails_loudly_without_a_message(self):
        with self.assertRaises(AssertionError):
            Client().consume("empty.channel")
        self.assertIsNone(Client().consume("empty.channel", fail_on_none=False))

    def test_rejected_connect_fails_the_check(self):
        from channels_core.exceptions import DenyConnection

        def deny(message, **kwargs):
            raise DenyConnection

        with apply_routes([route("websocket.connect", deny)]):
            client = WSClient()
            with self.assertRaises(DenyConnection):
                client.send_and_consume("websocket.connect")


class ApplyRoutesTests(ChannelTestCase):
    def test_context_manager_restores_the_routing(self):
        from channels_core.asgi import channel_layers

        before = channel_layers["default"].router
        with apply_routes([[route("x.y", lambda m: None)]]):
            self.assertEqual(channel_layers["default"].router.channels, {"x.y"})
        self.assertIs(channel_layers["default"].router, before)

    def test_function_decorator(self):
        from channels_core.asgi import channel_layers

        @apply_routes(route("only.this", lambda m: None))
        def inner():
            return channel_layers["default"].router.channels

        self.assertEqual(inner(), {"only.this"})
        self.assertNotEqual(channel_layers["default"].router.channels, {"only.this"})


@pytest.mark.django_db
def test_messages_never_leak_between_test_layers():
    """A layer swapped in by one ChannelTestCase is gone after it: the next one starts empty."""

    class First(ChannelTestCase):
        def runTest(self):
            Client().send("leak.check", {"n": 1})

    class Second(ChannelTestCase):
        def runTest(self):
            self.assertIsNone(self.get_next_message("leak.check"))

    import unittest

    result = unittest.TestResult()
    unittest.TestSuite([First(), Second()]).run(result)
    assert result.wasSuccessful(), result.errors + result.failures


class HttpUserAndSessionTests(ChannelTestCase):
    def test_http_user_and_session_reach_every_frame(self):
        class Both(WebsocketConsumer):
            http_user_and_session = True

            def receive(self, text=None, bytes=None, **kwargs):
                self.send(text=f"{self.message.user.username}:{self.message.http_session['colour']}")

        User.objects.create_user("eve", password="pw")
        with apply_routes([route_class(Both)]):
            client = WSClient()
            self.assertTrue(client.login(username="eve", password="pw"))
            client.session["colour"] = "green"
            client.session.save()
            client.send_and_consume("websocket.connect")
            client.send_and_consume("websocket.receive", text="x")  # no cookie now: the channel session knows
            self.assertEqual(client.receive(json=False), "eve:green")
