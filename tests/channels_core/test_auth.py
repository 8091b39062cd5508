"""message.user from HTTP and channel sessions (channels_core.auth), in process, against the test database."""

from __future__ import annotations

import pytest
from django.contrib import auth
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.sessions.backends.db import SessionStore as DbStore
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from channels_core.auth import (
    channel_and_http_session_user_from_http,
    channel_session_user,
    channel_session_user_from_http,
    http_session_user,
    transfer_user,
)

from .test_sessions import channel_data, channel_rows, connect, make_message, session_queries

pytestmark = pytest.mark.django_db

AUTH_KEYS = {auth.SESSION_KEY, auth.BACKEND_SESSION_KEY, auth.HASH_SESSION_KEY}


@pytest.fixture
def layer():
    from channels_core.layers import InMemoryChannelLayer

    return InMemoryChannelLayer()


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice():
    return User.objects.create_user("alice", password="secret-pw-1")


def logged_in_cookie(user):
    """The session cookie of a browser logged in as `user`."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def username(user):
    return user.username if user.is_authenticated else None


# -- transfer_user ---------------------------------------------------------------------------


def test_transfer_user_copies_backend_id_and_hash(alice):
    source = DbStore(session_key=logged_in_cookie(alice))
    target = {}
    transfer_user(source, target)
    assert set(target) == AUTH_KEYS
    assert target[auth.SESSION_KEY] == str(alice.pk)
    assert target[auth.HASH_SESSION_KEY] == alice.get_session_auth_hash()


def test_transfer_user_needs_all_three_keys():
    target = {"other": 1}
    transfer_user({auth.SESSION_KEY: "1", auth.BACKEND_SESSION_KEY: "x"}, target)
    assert target == {"other": 1}


def test_transfer_user_does_not_rewrite_an_unchanged_user(alice):
    source = DbStore(session_key=logged_in_cookie(alice))
    target = DbStore()
    transfer_user(source, target)
    assert target.modified
    target.modified = False
    transfer_user(source, target)
    assert not target.modified


# -- channel_session_user_from_http + channel_session_user -----------------------------------


def test_user_from_http_is_kept_for_the_whole_connection(layer, alice):
    cookie = f"sessionid={logged_in_cookie(alice)}"
    seen = []

    @channel_session_user_from_http
    def ws_connect(message):
        seen.append(("connect", username(message.user)))

    @channel_session_user
    def ws_receive(message):
        seen.append(("receive", username(message.user)))

    ws_connect(connect(layer, cookie=cookie))
    assert set(channel_data()) == AUTH_KEYS
    ws_receive(make_message(layer, "websocket.receive"))
    ws_receive(make_message(layer, "websocket.disconnect"))
    assert seen == [("connect", "alice"), ("receive", "alice"), ("receive", "alice")]
    assert channel_rows() == 0


def test_anonymous_without_a_session_and_nothing_is_stored(layer):
    seen = []

    @channel_session_user_from_http
    def ws_connect(message):
        seen.append(message.user)

    @channel_session_user
    def ws_receive(message):
        seen.append(message.user)

    ws_connect(connect(layer))
    ws_receive(make_message(layer, "websocket.receive"))
    assert all(isinstance(user, AnonymousUser) for user in seen) and len(seen) == 2
    assert not seen[0].is_authenticated
    assert channel_rows() == 0


def test_anonymous_with_a_session_that_is_not_logged_in(layer):
    store = DbStore()
    store["visits"] = 1
    store.save()
    seen = []

    @channel_session_user_from_http
    def ws_connect(message):
        seen.append(message.user.is_authenticated)

    ws_connect(connect(layer, cookie=f"sessionid={store.session_key}"))
    assert seen == [False]
    assert channel_rows() == 0


def test_user_is_lazy_no_query_if_the_consumer_does_not_look(layer, alice):
    @channel_session_user_from_http
    def ws_connect(message):
        pass

    @channel_session_user
    def ws_receive(message):
        message.reply_channel.send({"text": "no user needed"})

    ws_connect(connect(layer, cookie=f"sessionid={logged_in_cookie(alice)}"))
    with CaptureQueriesContext(connection) as ctx:
        ws_receive(make_message(layer, "websocket.receive"))
    assert ctx.captured_queries == []


def test_connect_without_cookie_costs_no_query(layer):
    @channel_session_user_from_http
    def ws_connect(message):
        pass

    with CaptureQueriesContext(connection) as ctx:
        ws_connect(connect(layer))
    assert ctx.captured_queries == []


def test_connect_with_cookie_reads_the_http_session_and_writes_the_channel_session_once(layer, alice):
    @channel_session_user_from_http
    def ws_connect(message):
        pass

    cookie = f"sessionid={logged_in_cookie(alice)}"
    with CaptureQueriesContext(connection) as ctx:
        ws_connect(connect(layer, cookie=cookie))
    kinds = [q.split()[0] for q in session_queries(ctx)]
    assert kinds == ["SELECT", "INSERT"], session_queries(ctx)  # 1.x: exists + insert + load + ... per message


def test_password_change_logs_the_socket_out(layer, alice):
    @channel_session_user_from_http
    def ws_connect(message):
        pass

    seen = []

    @channel_session_user
    def ws_receive(message):
        seen.append(username(message.user))

    ws_connect(connect(layer, cookie=f"sessionid={logged_in_cookie(alice)}"))
    ws_receive(make_message(layer, "websocket.receive"))
    alice.set_password("another-pw-2")
    alice.save()
    ws_receive(make_message(layer, "websocket.receive"))
    assert seen == ["alice", None]
    assert channel_rows() == 0  # flushed by auth.get_user: the stale login is gone for good


def test_logout_over_http_does_not_affect_an_open_socket_user(layer, alice):
    """As in Channels 1.x: the user was copied into the channel session at connect."""
    key = logged_in_cookie(alice)

    @channel_session_user_from_http
    def ws_connect(message):
        pass

    seen = []

    @channel_session_user
    def ws_receive(message):
        seen.append(username(message.user))

    ws_connect(connect(layer, cookie=f"sessionid={key}"))
    DbStore(session_key=key).delete()
    ws_receive(make_message(layer, "websocket.receive"))
    assert seen == ["alice"]


# -- http_session_user -----------------------------------------------------------------------


def test_http_session_user(layer, alice):
    seen = []

    @http_session_user
    def consumer(message):
        seen.append(username(message.user))

    consumer(connect(layer, cookie=f"sessionid={logged_in_cookie(alice)}"))
    consumer(connect(layer))
    consumer(connect(layer, cookie="sessionid=doesnotexist0123456789abcdefghij"))
    assert seen == ["alice", None, None]
    assert channel_rows() == 0


# -- channel_and_http_session_user_from_http -------------------------------------------------


def test_channel_and_http_user_on_every_message(layer, alice):
    seen = []

    @channel_and_http_session_user_from_http
    def consumer(message):
        seen.append(username(message.user))

    consumer(connect(layer, cookie=f"sessionid={logged_in_cookie(alice)}"))
    consumer(make_message(layer, "websocket.receive"))  # 1.x gave AnonymousUser here
    consumer(make_message(layer, "websocket.disconnect"))
    assert seen == ["alice", "alice", "alice"]
    assert channel_rows() == 0


def test_channel_and_http_picks_up_a_login_made_after_connect(layer, alice):
    store = DbStore()
    store["visits"] = 1
    store.save()
    seen = []

    @channel_and_http_session_user_from_http
    def consumer(message):
        seen.append(username(message.user))

    consumer(connect(layer, cookie=f"sessionid={store.session_key}"))
    # The browser logs in over HTTP in the same session (Django keeps the key here for the test).
    logged_in = DbStore(session_key=store.session_key)
    logged_in.load()
    for key in AUTH_KEYS:
        logged_in[key] = DbStore(session_key=logged_in_cookie(alice))[key]
    logged_in.save()
    consumer(make_message(layer, "websocket.receive"))
    consumer(make_message(layer, "websocket.receive"))
    assert seen == [None, "alice", "alice"]
    assert AUTH_KEYS <= set(channel_data())


def test_channel_and_http_later_message_ignoring_the_user_reads_only_the_channel_session(layer, alice):
    @channel_and_http_session_user_from_http
    def consumer(message):
        pass

    consumer(connect(layer, cookie=f"sessionid={logged_in_cookie(alice)}"))
    with CaptureQueriesContext(connection) as ctx:
        consumer(make_message(layer, "websocket.receive"))
    kinds = [q.split()[0] for q in session_queries(ctx)]
    assert kinds == ["SELECT"], session_queries(ctx)
    assert channel_data()["sessionid"]
