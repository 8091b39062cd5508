"""The operations page's WebSocket consumer, routing check and settings, in process (in-memory layer).

The admin view itself (staff only, on the admin index) and the live page are
tested against the example's real processes in test_ops_page_browser.py:
the test project has no admin.
"""

from __future__ import annotations

import json
from unittest import mock

from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from channels_core import Group
from channels_core.ops import conf
from channels_core.ops.checks import route_problems
from channels_core.ops.consumers import CLOSE_NOT_STAFF, OpsStatusConsumer, json_safe
from channels_core.ops.routing import channel_routing
from channels_core.test import ChannelTestCase, WSClient, apply_routes
from routing import include, route

PATH = conf.DEFAULT_WEBSOCKET_PATH


def ws_client(user=None, origin="http://testserver"):
    client = WSClient()
    if origin is not None:
        client.set_header("origin", origin)
    if user is not None:
        client.force_login(user)
    return client


def connect(client):
    client.send_and_consume("websocket.connect", path=PATH, check_accept=False)
    return client.receive(json=False)


def refresh(client, text=None):
    client.send_and_consume("websocket.receive", text=text or {"type": "refresh"}, path=PATH)
    return client.receive()


def channel_session_rows():
    return Session.objects.filter(session_key__startswith="chn").count()


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
@apply_routes(channel_routing)
class OpsSocketTests(ChannelTestCase):
    @classmethod
    def setUpTestData(cls):
        cls.staff = User.objects.create_user("ops", password="pw-ops-1", is_staff=True)
        cls.member = User.objects.create_user("member", password="pw-member-1")

    def test_staff_gets_the_status_on_connect_and_on_each_refresh(self):
        Group("ops-test-room").add("websocket.send!one")
        Group("ops-test-room").add("websocket.send!two")
        client = ws_client(self.staff)
        self.assertEqual(connect(client), {"accept": True})
        first = client.receive()
        self.assertEqual(first["type"], "status")
        groups = {g["group"]: g["members"] for g in first["status"]["groups"]}
        self.assertEqual(groups["ops-test-room"], 2)
        self.assertEqual(first["status"]["errors"], {})

        Group("ops-test-room").add("websocket.send!three")
        second = refresh(client)
        self.assertEqual(second["type"], "status")
        self.assertEqual({g["group"]: g["members"] for g in second["status"]["groups"]}["ops-test-room"], 3)
        self.assertGreaterEqual(second["status"]["time"], first["status"]["time"])

    def test_the_page_gets_the_largest_groups_up_to_its_limit(self):
        for size in (1, 3, 2):
            for member in range(size):
                Group(f"ops-size-{size}").add(f"websocket.send!s{size}m{member}")
        client = ws_client(self.staff)
        with mock.patch.object(OpsStatusConsumer, "limit", 2):
            connect(client)
            frame = client.receive()
        self.assertEqual(frame["limit"], 2)
        self.assertEqual([g["group"] for g in frame["status"]["groups"]], ["ops-size-3", "ops-size-2"])

    def test_anonymous_and_non_staff_are_refused_and_leave_no_session_behind(self):
        for client in (ws_client(), ws_client(self.member)):
            self.assertEqual(connect(client), {"close": True})  # before an accept: the handshake gets 403
            self.assertIsNone(client.receive())
        self.assertEqual(channel_session_rows(), 0)

    def test_inactive_staff_is_refused(self):
        gone = User.objects.create_user("gone", password="pw-gone-1", is_staff=True, is_active=False)
        client = ws_client()
        client.force_login(gone, backend="django.contrib.auth.backends.AllowAllUsersModelBackend")
        self.assertEqual(connect(client), {"close": True})

    def test_staff_from_another_origin_or_without_one_is_refused(self):
        for origin in ("http://evil.example", None):
            client = ws_client(self.staff, origin=origin)
            self.assertEqual(connect(client), {"close": True}, origin)

    def test_logging_out_closes_an_open_page_at_its_next_refresh(self):
        client = ws_client(self.staff)
        self.assertEqual(connect(client), {"accept": True})
        client.receive()
        client.session.flush()  # what django.contrib.auth.logout does to the browser's session
        self.assertEqual(refresh(client), {"close": CLOSE_NOT_STAFF})

    def test_losing_staff_status_closes_an_open_page_at_its_next_refresh(self):
        client = ws_client(self.staff)
        self.assertEqual(connect(client), {"accept": True})
        client.receive()
        self.assertEqual(refresh(client)["type"], "status")
        User.objects.filter(pk=self.staff.pk).update(is_staff=False)
        self.assertEqual(refresh(client), {"close": CLOSE_NOT_STAFF})

    def test_a_password_change_closes_an_open_page_at_its_next_refresh(self):
        client = ws_client(self.staff)
        connect(client)
        client.receive()
        staff = User.objects.get(pk=self.staff.pk)
        staff.set_password("pw-ops-2")
        staff.save()
        self.assertEqual(refresh(client), {"close": CLOSE_NOT_STAFF})

    def test_a_refresh_costs_three_database_reads_and_no_write(self):
        client = ws_client(self.staff)
        connect(client)
        client.receive()
        with CaptureQueriesContext(connection) as queries:
            self.assertEqual(refresh(client)["type"], "status")
        statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
        # The channel session (the HTTP session's key), the HTTP session, the user.
        self.assertEqual(statements, ["SELECT", "SELECT", "SELECT"], queries.captured_queries)

    def test_anything_but_a_refresh_gets_an_error_and_the_socket_stays(self):
        client = ws_client(self.staff)
        connect(client)
        client.receive()
        self.assertEqual(refresh(client, {"type": "flush"})["type"], "error")
        self.assertIn("not valid JSON", refresh(client, "{nope")["error"])
        self.assertEqual(refresh(client)["type"], "status")

    def test_the_disconnect_removes_the_channel_session(self):
        client = ws_client(self.staff)
        connect(client)
        self.assertEqual(channel_session_rows(), 1)  # holds the HTTP session's key for later refreshes
        client.send_and_consume("websocket.disconnect", content={"code": 1000}, path=PATH)
        self.assertEqual(channel_session_rows(), 0)


def test_json_safe_replaces_what_json_parse_cannot_read():
    value = {"a": float("nan"), "b": [float("inf"), 1.5, b"raw"], 3: {"c": None, "d": object}}
    safe = json_safe(value)
    assert safe["a"] is None and safe["b"] == [None, 1.5, "raw"] and safe["3"]["c"] is None
    assert "object" in safe["3"]["d"]
    json.loads(json.dumps(safe, allow_nan=False))


def other_consumer(message, **kwargs):
    pass


def test_the_routing_check_finds_a_missing_or_shadowed_route():
    assert route_problems(channel_routing, PATH) == []
    assert route_problems([include("channels_core.ops.routing.channel_routing")], PATH) == []
    assert route_problems([], PATH) == ["websocket.connect goes to no route", "websocket.receive goes to no route"]
    shadowed = [route("websocket.connect", other_consumer, path=r"^/admin/"), *channel_routing]
    assert route_problems(shadowed, PATH) == ["websocket.connect goes to other_consumer"]


def test_the_settings_have_defaults_a_floor_and_refuse_nonsense(settings):
    assert conf.websocket_path() == "/admin/channels-ops/ws/" and conf.refresh_seconds() == 2.0
    settings.CHANNELS_OPS_REFRESH_SECONDS = 0.01
    assert conf.refresh_seconds() == conf.MIN_REFRESH_SECONDS
    for bad in ("soon", float("nan")):
        settings.CHANNELS_OPS_REFRESH_SECONDS = bad
        try:
            conf.refresh_seconds()
        except ImproperlyConfigured:
            pass
        else:
            raise AssertionError(f"{bad!r} accepted")
    settings.CHANNELS_OPS_WEBSOCKET_PATH = "ops/ws"
    try:
        conf.websocket_path()
    except ImproperlyConfigured:
        pass
    else:
        raise AssertionError("a path without a leading / accepted")


def test_the_consumer_handles_exactly_the_websocket_channels():
    assert OpsStatusConsumer.channel_names() == {"websocket.connect", "websocket.receive", "websocket.disconnect"}
