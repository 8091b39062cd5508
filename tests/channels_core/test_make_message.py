"""channels_core.test.make_message: a Message shaped as the interface server sends it."""

from __future__ import annotations

from channels_core.layers import InMemoryChannelLayer
from channels_core.test import make_message


def test_the_interface_servers_fields_are_there():
    message = make_message("websocket.connect")
    assert message.channel.name == "websocket.connect"
    assert {"reply_channel", "path", "headers", "query_string", "client", "server", "order"} <= set(message.content)
    assert message.content["order"] == 0
    request = make_message("http.request", path="/a/", method="POST", body=b"x=1")
    assert (request.content["method"], request.content["path"], request.content["body"]) == ("POST", "/a/", b"x=1")


def test_content_and_fields_replace_the_defaults_and_reply_channel_none_leaves_it_out():
    message = make_message("websocket.receive", {"text": "hi", "order": 3}, order=4, reply_channel=None)
    assert message.content == {"path": "/", "order": 4, "bytes": None, "text": "hi"}
    assert message.reply_channel is None


def test_replies_go_to_the_layer_given():
    layer = InMemoryChannelLayer()
    message = make_message("websocket.connect", layer=layer)
    message.reply_channel.send({"accept": True}, immediately=True)
    assert layer.receive([message.content["reply_channel"]]) == (message.content["reply_channel"], {"accept": True})
