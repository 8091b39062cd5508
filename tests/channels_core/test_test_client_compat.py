"""The test helpers behave as Channels 1.x's did where 1.x tests depend on it (porting by imports only)."""

from __future__ import annotations

from channels_core.exceptions import ChannelSocketException
from channels_core.handler import AsgiRequest
from channels_core.test import ChannelTestCase, Client, WSClient, apply_routes
from routing import route


class _ReplyError(ChannelSocketException):
    def run(self, message):
        message.reply_channel.send({"text": "error"})


def _raise_socket_exception(message):
    raise _ReplyError()


def _reply_number(message):
    message.reply_channel.send({"text": 0})


def _reply_query(message):
    message.content["method"] = "GET"  # AsgiRequest wants one; WebSocket messages have none
    message.reply_channel.send({"text": dict(AsgiRequest(message).GET)})


def _reply_binary(message):
    message.reply_channel.send({"bytes": b"\x00\x01"})


class WSClientReceiveTests(ChannelTestCase):
    def test_receive_without_json_returns_the_text(self):
        client = WSClient()
        with apply_routes([route("websocket.receive", _raise_socket_exception)]):
            client.send_and_consume("websocket.receive", text="hi")
        self.assertEqual(client.receive(json=False), "error")

    def test_receive_returns_a_text_that_is_not_a_string(self):
        client = WSClient()
        with apply_routes([route("websocket.receive", _reply_number)]):
            client.send_and_consume("websocket.receive", text="hi")
        self.assertEqual(client.receive(), 0)

    def test_receive_returns_the_message_when_it_has_no_text(self):
        client = WSClient()
        with apply_routes([route("websocket.receive", _reply_binary)]):
            client.send_and_consume("websocket.receive", text="hi")
        self.assertEqual(client.receive(), {"bytes": b"\x00\x01"})
        self.assertIsNone(client.receive())

    def test_query_string_only_on_connect(self):
        client = WSClient()
        routes = [route("websocket.connect", _reply_query), route("websocket.receive", _reply_query)]
        with apply_routes(routes):
            path = "/test?key1=val1&key2=val2&key1=val3"
            client.send_and_consume("websocket.connect", path=path, check_accept=False)
            self.assertEqual(client.receive(), {"key1": ["val1", "val3"], "key2": ["val2"]})
            client.send_and_consume("websocket.receive", path=path)
            self.assertEqual(client.receive(), {})
        client.send("websocket.receive", path=path)
        sent = client.get_next_message("websocket.receive")
        self.assertEqual(sent["path"], "/test")
        self.assertNotIn("query_string", sent.content)

    def test_get_content_arguments_are_optional(self):
        client = WSClient(ordered=True)
        content = client._get_content()
        self.assertEqual((content["path"], content["order"]), ("/", 0))
        content = client._get_content(path="/my/path?test=1&token=2")
        self.assertEqual((content["path"], content["query_string"]), ("/my/path", "test=1&token=2"))


class ClientConsumeTests(ChannelTestCase):
    def test_channel_socket_exception_runs(self):
        client = Client()
        with apply_routes([route("test.channel", _raise_socket_exception)]):
            client.send_and_consume("test.channel", {"x": 1})
        self.assertEqual(client.receive(), {"text": "error"})
