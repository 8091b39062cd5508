"""The consumer decorators accept what Channels 1.x's did: methods, 1.x dict headers, messages with no channel."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore as DbStore

from channels_core.auth import (
    channel_and_http_session_user_from_http,
    channel_session_user,
    channel_session_user_from_http,
    http_session_user,
)
from channels_core.channel import Channel
from channels_core.layers import InMemoryChannelLayer
from channels_core.message import Message
from channels_core.sessions import (
    channel_and_http_session,
    channel_session,
    enforce_ordering,
    http_session,
    session_for_reply_channel,
)
from channels_core.test import make_message

pytestmark = pytest.mark.django_db

REPLY = "websocket.send!methods"
DECORATORS = [
    channel_session,
    http_session,
    channel_and_http_session,
    enforce_ordering,
    channel_session_user,
    http_session_user,
    channel_session_user_from_http,
    channel_and_http_session_user_from_http,
]


@pytest.fixture
def layer():
    return InMemoryChannelLayer()


def _saved_session(**data) -> str:
    store = DbStore()
    store.update(data)
    store.save()
    return store.session_key


def _connect(layer, headers, order=0):
    return make_message("websocket.connect", layer=layer, reply_channel=REPLY, headers=headers, order=order)


@pytest.mark.parametrize("decorator", DECORATORS, ids=lambda d: d.__name__)
def test_decorator_works_on_a_method(layer, decorator):
    seen = []

    class Consumer:
        @decorator
        def connect(self, message, **kwargs):
            seen.append((self, message, kwargs))

    consumer = Consumer()
    message = _connect(layer, [[b"host", b"x"]])
    consumer.connect(message, room="blue")
    assert seen == [(consumer, message, {"room": "blue"})]


@pytest.mark.parametrize("decorator", DECORATORS, ids=lambda d: d.__name__)
def test_decorator_without_a_message_in_the_first_two_arguments(layer, decorator):
    @decorator
    def consumer(a, b, message):
        raise AssertionError("must not run")

    # The outermost check names itself: channel_session_user is built on channel_session, say.
    outermost = "(channel_session|http_session|enforce_ordering)"
    with pytest.raises(ValueError, match=rf"^{outermost} called without Message instance$"):
        consumer(None, None, _connect(layer, []))


def test_channel_session_on_a_method_keeps_the_session(layer):
    class Consumer:
        @channel_session
        @channel_session
        def receive(self, message):
            message.channel_session["ponies"] = -1

    Consumer().receive(make_message("websocket.receive", layer=layer, reply_channel=REPLY))
    assert session_for_reply_channel(REPLY)["ponies"] == -1


def test_http_session_reads_1x_dict_headers(layer, settings):
    key = _saved_session(species="pony")
    cookie = f"{settings.SESSION_COOKIE_NAME}={key}".encode("ascii")

    @http_session
    def consumer(message):
        message.http_session["species"] = "horse"

    consumer(_connect(layer, {"host": b"example.com", "cookie": cookie}))
    assert DbStore(session_key=key).load() == {"species": "horse"}


def test_channel_and_http_session_with_dict_headers_rehydrates(layer, settings):
    key = _saved_session(species="pony")
    cookie = f"{settings.SESSION_COOKIE_NAME}={key}".encode("ascii")

    @channel_and_http_session
    def consumer(message):
        pass

    first = _connect(layer, {"cookie": cookie})
    consumer(first)
    assert first.channel_session[settings.SESSION_COOKIE_NAME] == key
    later = make_message("websocket.receive", layer=layer, reply_channel=REPLY)
    consumer(later)
    assert later.http_session.session_key == key


def test_http_session_user_from_dict_headers(layer, settings, client):
    user = User.objects.create_user("ada", password="pw")
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.session.session_key}".encode("ascii")
    seen = []

    @http_session_user
    def consumer(message):
        seen.append(message.user.username)

    consumer(_connect(layer, {"cookie": cookie}))
    assert seen == ["ada"]


def test_enforce_ordering_without_order_on_a_message_without_channel():
    @enforce_ordering
    def consumer(message):
        raise AssertionError("must not run")

    message = Message({"reply_channel": REPLY}, None, InMemoryChannelLayer())
    with pytest.raises(ValueError, match="order"):
        consumer(message)


def test_a_channel_without_a_name_prints_as_a_string():
    channel = Channel(None, channel_layer=InMemoryChannelLayer())
    assert str(channel) == ""
    assert f"on {channel}" == "on "
