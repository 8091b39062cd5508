"""channel_session / http_session / channel_and_http_session, in process, against the test database.

Query counts are taken with CaptureQueriesContext and restricted to the
django_session table (savepoints etc. are not round trips to the session store).
"""

from __future__ import annotations

import hashlib
import os

import pytest
from django.contrib.sessions.backends.db import SessionStore as DbStore
from django.contrib.sessions.models import Session
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels_core import test as test_helpers
from channels_core.exceptions import ConsumeLater
from channels_core.layers import InMemoryChannelLayer
from channels_core.sessions import (
    channel_and_http_session,
    channel_session,
    http_session,
    session_for_reply_channel,
)

pytestmark = pytest.mark.django_db

REPLY = "websocket.send!abcdefgh"


@pytest.fixture
def layer():
    return InMemoryChannelLayer()


# What these tests send unless they say otherwise (no headers on a connect: no cookie, no session).
SESSION_TEST_FIELDS = {
    "websocket.connect": {"headers": []},
    "websocket.receive": {"text": "hi"},
    "websocket.disconnect": {"order": 2},
}


def make_message(layer, channel, reply=REPLY, **content):
    fields = {"path": "/ws/", **SESSION_TEST_FIELDS.get(channel, {}), **content}
    return test_helpers.make_message(channel, layer=layer, reply_channel=reply, **fields)


def connect(layer, reply=REPLY, cookie=None, query_string=b"", **content):
    headers = [[b"host", b"testserver"]]
    if cookie is not None:
        headers.append([b"cookie", cookie.encode("latin-1")])
    return make_message(layer, "websocket.connect", reply, headers=headers, query_string=query_string, **content)


@pytest.fixture
def session_dir(settings, tmp_path):
    """SESSION_FILE_PATH for the file engine (whose store classes cache the path: reset it)."""
    from django.contrib.sessions.backends.file import SessionStore as FileStore

    from channels_core.sessions import _store_classes

    def reset():
        for cls in (FileStore, _store_classes.get(FileStore)):
            if cls is not None and "_storage_path" in vars(cls):
                del cls._storage_path

    settings.SESSION_FILE_PATH = str(tmp_path)
    reset()
    yield tmp_path
    reset()


def session_queries(ctx):
    """The SQL statements of a capture that touched the session table."""
    return [q["sql"] for q in ctx.captured_queries if "django_session" in q["sql"]]


def channel_rows():
    return Session.objects.filter(session_key__startswith="chn").count()


def channel_data(reply=REPLY):
    key = session_for_reply_channel(reply).session_key
    return DbStore(session_key=key).load()


def http_session_with(**data):
    store = DbStore()
    for key, value in data.items():
        store[key] = value
    store.save()
    return store.session_key


# -- the key ---------------------------------------------------------------------------------


def test_session_key_is_chn_plus_sha1_prefix_and_nothing_is_read():
    with CaptureQueriesContext(connection) as ctx:
        session = session_for_reply_channel(REPLY)
    assert session.session_key == "chn" + hashlib.sha1(REPLY.encode()).hexdigest()[:29]
    assert len(session.session_key) == 32
    assert session_for_reply_channel(REPLY + "x").session_key != session.session_key
    assert session_queries(ctx) == []
    assert isinstance(session, DbStore)


# -- laziness --------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["websocket.connect", "websocket.receive"])
def test_consumer_that_ignores_the_session_costs_no_query(layer, channel):
    seen = []

    @channel_session
    def consumer(message):
        seen.append(message.channel_session.session_key)

    with CaptureQueriesContext(connection) as ctx:
        consumer(make_message(layer, channel))
    assert seen and seen[0].startswith("chn")
    assert session_queries(ctx) == []
    assert channel_rows() == 0


def test_created_on_first_write_then_read_back_by_the_next_message(layer):
    @channel_session
    def store(message):
        message.channel_session["room"] = "lobby"

    values = []

    @channel_session
    def read(message):
        values.append(message.channel_session.get("room"))

    with CaptureQueriesContext(connection) as ctx:
        store(make_message(layer, "websocket.connect"))
    # connect: the session cannot exist yet, so it is written without being read first
    queries = session_queries(ctx)
    assert len(queries) == 1 and queries[0].startswith("INSERT"), queries
    assert channel_rows() == 1
    assert channel_data() == {"room": "lobby"}

    with CaptureQueriesContext(connection) as ctx:
        read(make_message(layer, "websocket.receive"))
    assert values == ["lobby"]
    queries = session_queries(ctx)
    assert len(queries) == 1 and queries[0].startswith("SELECT"), queries  # read, not saved


def test_saved_only_if_modified_and_updates_in_place(layer):
    @channel_session
    def bump(message):
        message.channel_session["n"] = message.channel_session.get("n", 0) + 1

    bump(make_message(layer, "websocket.connect"))
    with CaptureQueriesContext(connection) as ctx:
        bump(make_message(layer, "websocket.receive"))
    kinds = [q.split()[0] for q in session_queries(ctx)]
    assert kinds == ["SELECT", "UPDATE"], session_queries(ctx)
    assert channel_data() == {"n": 2}
    assert channel_rows() == 1


def test_first_write_on_a_later_message_reads_then_inserts(layer):
    @channel_session
    def write(message):
        message.channel_session["x"] = 1

    with CaptureQueriesContext(connection) as ctx:
        write(make_message(layer, "websocket.receive"))
    kinds = [q.split()[0] for q in session_queries(ctx)]
    assert kinds == ["SELECT", "INSERT"], session_queries(ctx)
    assert channel_data() == {"x": 1}


def test_explicit_save_inside_the_consumer_works_on_a_new_session(layer):
    @channel_session
    def consumer(message):
        message.channel_session["a"] = 1
        message.channel_session.save()
        message.channel_session["b"] = 2

    consumer(make_message(layer, "websocket.receive"))
    assert channel_data() == {"a": 1, "b": 2}


def test_saved_even_if_the_consumer_raises(layer):
    @channel_session
    def consumer(message):
        message.channel_session["before"] = "crash"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        consumer(make_message(layer, "websocket.receive"))
    assert channel_data() == {"before": "crash"}


def test_emptied_session_is_deleted_not_saved_empty(layer):
    @channel_session
    def fill(message):
        message.channel_session["k"] = "v"

    @channel_session
    def empty(message):
        del message.channel_session["k"]

    fill(make_message(layer, "websocket.connect"))
    assert channel_rows() == 1
    empty(make_message(layer, "websocket.receive"))
    assert channel_rows() == 0


def test_nested_decorators_share_one_session_and_save_once(layer):
    @channel_session
    @channel_session
    def consumer(message):
        message.channel_session["n"] = 1

    with CaptureQueriesContext(connection) as ctx:
        consumer(make_message(layer, "websocket.connect"))
    assert len(session_queries(ctx)) == 1
    assert channel_data() == {"n": 1}


def test_no_reply_channel_is_a_value_error(layer):
    @channel_session
    def consumer(message):
        pass

    with pytest.raises(ValueError, match="reply_channel"):
        consumer(make_message(layer, "websocket.receive", reply=None))


def test_sessions_of_two_sockets_are_separate(layer):
    @channel_session
    def store(message):
        message.channel_session["who"] = message.reply_channel.name

    store(make_message(layer, "websocket.connect", reply="websocket.send!one"))
    store(make_message(layer, "websocket.connect", reply="websocket.send!two"))
    assert channel_data("websocket.send!one") == {"who": "websocket.send!one"}
    assert channel_data("websocket.send!two") == {"who": "websocket.send!two"}


# -- lifetime: deleted on disconnect ---------------------------------------------------------


def test_deleted_after_disconnect_even_if_the_consumer_modified_it(layer):
    seen = []

    @channel_session
    def consumer(message):
        message.channel_session["n"] = message.channel_session.get("n", 0) + 1
        seen.append(message.channel_session["n"])

    consumer(make_message(layer, "websocket.connect"))
    consumer(make_message(layer, "websocket.receive"))
    assert channel_rows() == 1
    consumer(make_message(layer, "websocket.disconnect"))
    assert seen == [1, 2, 3]  # the disconnect consumer still saw the connection's state
    assert channel_rows() == 0


def test_deleted_after_disconnect_when_the_consumer_ignores_it_or_fails(layer):
    @channel_session
    def fill(message):
        message.channel_session["k"] = 1

    @channel_session
    def ignore(message):
        pass

    @channel_session
    def fail(message):
        raise RuntimeError("boom")

    fill(make_message(layer, "websocket.connect", reply="websocket.send!a"))
    fill(make_message(layer, "websocket.connect", reply="websocket.send!b"))
    assert channel_rows() == 2
    ignore(make_message(layer, "websocket.disconnect", reply="websocket.send!a"))
    with pytest.raises(RuntimeError):
        fail(make_message(layer, "websocket.disconnect", reply="websocket.send!b"))
    assert channel_rows() == 0


def test_many_connections_leave_no_rows(layer):
    @channel_session
    def consumer(message):
        message.channel_session["n"] = message.channel_session.get("n", 0) + 1

    for i in range(20):
        reply = f"websocket.send!socket{i}"
        for channel in ("websocket.connect", "websocket.receive", "websocket.disconnect"):
            consumer(make_message(layer, channel, reply=reply))
    assert channel_rows() == 0


def test_consume_later_on_disconnect_keeps_the_session_for_the_retry(layer):
    attempts = []

    @channel_session
    def consumer(message):
        attempts.append(dict(message.channel_session))
        if message.content.get("__retries__", 0) < 1:
            message.channel_session["tried"] = True
            raise ConsumeLater()

    @channel_session
    def fill(message):
        message.channel_session["k"] = 1

    fill(make_message(layer, "websocket.connect"))
    with pytest.raises(ConsumeLater):
        consumer(make_message(layer, "websocket.disconnect"))
    assert channel_rows() == 1
    consumer(make_message(layer, "websocket.disconnect", __retries__=1))
    assert attempts == [{"k": 1}, {"k": 1, "tried": True}]
    assert channel_rows() == 0


def test_doomed_disconnect_deletes_even_on_consume_later(layer):
    @channel_session
    def fill(message):
        message.channel_session["k"] = 1

    @channel_session
    def consumer(message):
        raise ConsumeLater()

    fill(make_message(layer, "websocket.connect"))
    message = make_message(layer, "websocket.disconnect", __retries__=10)
    message.__doomed__ = True
    with pytest.raises(ConsumeLater):
        consumer(message)
    assert channel_rows() == 0


def test_save_after_a_concurrent_disconnect_does_not_resurrect_the_session(layer):
    """A receive on one worker loads the session; meanwhile the disconnect on another deletes it."""

    @channel_session
    def fill(message):
        message.channel_session["n"] = 1

    @channel_session
    def disconnect(message):
        pass

    @channel_session
    def slow_receive(message):
        message.channel_session["n"] += 1
        disconnect(make_message(layer, "websocket.disconnect"))  # "another worker"

    fill(make_message(layer, "websocket.connect"))
    slow_receive(make_message(layer, "websocket.receive"))
    assert channel_rows() == 0


def test_concurrent_creation_is_not_an_error(layer):
    """Two consumers of one socket both find no session and both write: the second overwrites (no CreateError)."""
    first = session_for_reply_channel(REPLY)
    second = session_for_reply_channel(REPLY)
    first["a"] = 1
    second["b"] = 2
    first.save()
    second.save()
    assert channel_data() == {"b": 2}


# -- engines ---------------------------------------------------------------------------------


def test_channel_session_engine_setting_is_used(layer, settings):
    settings.CHANNEL_SESSION_ENGINE = "django.contrib.sessions.backends.cache"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "chs"}}
    from django.core.cache import cache

    @channel_session
    def consumer(message):
        message.channel_session["n"] = message.channel_session.get("n", 0) + 1

    key = session_for_reply_channel(REPLY).session_key
    with CaptureQueriesContext(connection) as ctx:
        consumer(make_message(layer, "websocket.connect"))
        consumer(make_message(layer, "websocket.receive"))
        assert cache.get("django.contrib.sessions.cache" + key) == {"n": 2}
        consumer(make_message(layer, "websocket.disconnect"))
    assert cache.get("django.contrib.sessions.cache" + key) is None
    assert session_queries(ctx) == []
    assert channel_rows() == 0


def test_file_engine_creates_and_deletes_files_under_the_channel_key(layer, settings, session_dir):
    tmp_path = session_dir
    settings.CHANNEL_SESSION_ENGINE = "django.contrib.sessions.backends.file"

    @channel_session
    def consumer(message):
        message.channel_session["n"] = message.channel_session.get("n", 0) + 1

    key = session_for_reply_channel(REPLY).session_key
    consumer(make_message(layer, "websocket.receive"))
    consumer(make_message(layer, "websocket.receive"))
    files = os.listdir(tmp_path)
    assert files == ["sessionid" + key], files
    consumer(make_message(layer, "websocket.disconnect"))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("option", ["SESSION_ENGINE", "CHANNEL_SESSION_ENGINE"])
def test_signed_cookie_engine_is_refused(layer, settings, option):
    setattr(settings, option, "django.contrib.sessions.backends.signed_cookies")

    @channel_session
    def consumer(message):
        pass

    with pytest.raises(ImproperlyConfigured, match="signed-cookie"):
        consumer(make_message(layer, "websocket.receive"))


def test_signed_cookie_http_sessions_work_with_a_server_side_channel_engine(layer, settings):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    settings.CHANNEL_SESSION_ENGINE = "django.contrib.sessions.backends.db"

    @channel_session
    def consumer(message):
        message.channel_session["ok"] = True

    consumer(make_message(layer, "websocket.receive"))
    assert channel_data() == {"ok": True}


# -- http_session ----------------------------------------------------------------------------


def test_http_session_from_cookie_is_lazy(layer):
    key = http_session_with(visits=3)
    got = []

    @http_session
    def ignore(message):
        got.append(message.http_session.session_key)

    @http_session
    def read(message):
        got.append(message.http_session["visits"])

    with CaptureQueriesContext(connection) as ctx:
        ignore(connect(layer, cookie=f"other=1; sessionid={key}; x=y"))
    assert session_queries(ctx) == []
    read(connect(layer, cookie=f"sessionid={key}"))
    assert got == [key, 3]


def test_http_session_cookie_name_setting_and_several_cookie_headers(layer, settings):
    settings.SESSION_COOKIE_NAME = "mysess"
    key = http_session_with(visits=1)
    got = []

    @http_session
    def consumer(message):
        got.append(message.http_session and message.http_session.session_key)

    message = connect(layer, cookie="a=1")
    message.content["headers"].append([b"Cookie", f"mysess={key}".encode()])
    consumer(message)
    consumer(connect(layer, cookie=f"sessionid={key}"))
    assert got == [key, None]


def test_http_session_from_query_string_wins_over_cookie(layer):
    cookie_key = http_session_with(src="cookie")
    query_key = http_session_with(src="query")
    got = []

    @http_session
    def consumer(message):
        got.append(message.http_session["src"])

    consumer(connect(layer, cookie=f"sessionid={cookie_key}", query_string=f"a=1&session_key={query_key}".encode()))
    consumer(connect(layer, cookie=f"sessionid={cookie_key}", query_string="a=1"))  # str query string too
    assert got == ["query", "cookie"]


@pytest.mark.parametrize("cookie", [None, "other=1", "sessionid=", "sessionid=short"])
def test_http_session_is_none_without_a_usable_key(layer, cookie):
    got = []

    @http_session
    def consumer(message):
        got.append(message.http_session)

    consumer(connect(layer, cookie=cookie))
    consumer(make_message(layer, "websocket.receive"))  # no headers at all
    assert got == [None, None]


def test_http_session_saved_if_modified_but_a_stale_key_creates_nothing(layer):
    key = http_session_with(visits=1)

    @http_session
    def consumer(message):
        message.http_session["visits"] = message.http_session.get("visits", 0) + 1

    consumer(connect(layer, cookie=f"sessionid={key}"))
    assert DbStore(session_key=key).load() == {"visits": 2}
    before = Session.objects.count()
    consumer(connect(layer, cookie="sessionid=doesnotexist0123456789abcdefghij"))
    assert Session.objects.count() == before


# -- channel_and_http_session ----------------------------------------------------------------


def test_channel_and_http_session_stores_the_key_then_rehydrates(layer):
    key = http_session_with(visits=5)
    got = []

    @channel_and_http_session
    def consumer(message):
        session = message.http_session
        got.append(session.get("visits") if session is not None else None)
        if message.channel.name == "websocket.receive":
            session["visits"] += 1

    consumer(connect(layer, cookie=f"sessionid={key}"))
    assert channel_data() == {"sessionid": key}
    with CaptureQueriesContext(connection) as ctx:
        consumer(make_message(layer, "websocket.receive"))
    # channel session read, http session read, http session saved; the channel session is not rewritten
    assert [q.split()[0] for q in session_queries(ctx)] == ["SELECT", "SELECT", "UPDATE"], session_queries(ctx)
    consumer(make_message(layer, "websocket.disconnect"))
    assert got == [5, 5, 6]
    assert DbStore(session_key=key).load() == {"visits": 6}
    assert channel_rows() == 0
    assert Session.objects.filter(session_key=key).exists()  # the browser's session is kept


def test_channel_and_http_session_without_cookie(layer):
    got = []

    @channel_and_http_session
    def consumer(message):
        got.append(message.http_session)

    consumer(connect(layer))
    consumer(make_message(layer, "websocket.receive"))
    assert got == [None, None]
    assert channel_rows() == 0


@pytest.mark.parametrize("engine", ["file", "db", "cached_db"])
def test_expired_channel_session_is_replaced_under_the_same_key(layer, settings, session_dir, engine):
    import datetime

    from django.utils import timezone

    tmp_path = session_dir
    settings.CHANNEL_SESSION_ENGINE = f"django.contrib.sessions.backends.{engine}"
    stale = session_for_reply_channel(REPLY)
    stale["old"] = True
    stale.set_expiry(timezone.now() - datetime.timedelta(minutes=1))
    stale.save()
    seen = []

    @channel_session
    def consumer(message):
        seen.append(dict(message.channel_session))
        message.channel_session["new"] = True

    consumer(make_message(layer, "websocket.receive"))
    consumer(make_message(layer, "websocket.receive"))
    assert seen == [{}, {"new": True}]
    if engine == "file":
        assert os.listdir(tmp_path) == ["sessionid" + stale.session_key]  # no file under a random key
    consumer(make_message(layer, "websocket.disconnect"))
    assert os.listdir(tmp_path) == []
    assert channel_rows() == 0


def test_http_disconnect_ends_the_channel_session_too(layer):
    @channel_session
    def consumer(message):
        message.channel_session["k"] = 1

    consumer(make_message(layer, "http.request"))
    assert channel_rows() == 1
    consumer(make_message(layer, "http.disconnect"))
    assert channel_rows() == 0
