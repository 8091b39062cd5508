"""Three Channels 1.x example apps, ported by changing imports, driven over real WebSockets.

Each app's checks are a mixin; `PortedApps` gathers them into one
ChannelLiveServerTestCase (a real interface server and a real worker serve the
test project, sharing the test database), and one subclass per topology of
`tests.support.topologies` runs them all on it: the shared Redis, two
client-side shards, Sentinel, Cluster. Each under a private key prefix, flushed after.
`PortedAppsOnURL` gathers the same checks on a layer chosen by URL: its subclasses
are in `test_ported_apps_ipc.py` and `test_ported_apps_rabbitmq.py`.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.test import override_settings
from websockets.exceptions import ConnectionClosed

from channels_core.test import ChannelLiveServerTestCase
from tests.apps.topology_settings import url_layer
from tests.interface_server.ws_support import ws_connect
from tests.project.app.models import IntegerValue, LiveBlog, Post, Room
from tests.support import topologies


def recv_json(ws, timeout: float = 10.0):
    return json.loads(ws.recv(timeout=timeout))


class LiveBlogChecks:
    def test_posts_saved_in_another_process_appear_in_every_open_page(self):
        blog = LiveBlog.objects.create(title="Launch", slug="launch")
        first = ws_connect(self.live_server_ws_url + "/liveblog/launch/stream/")
        second = ws_connect(self.live_server_ws_url + "/liveblog/launch/stream/")
        try:
            post = Post.objects.create(liveblog=blog, body="<p>We have lift-off</p>")
            for ws in (first, second):
                self.assertEqual(recv_json(ws), {"id": post.id, "html": "<p>We have lift-off</p>"})
        finally:
            first.close()
            second.close()

    def test_an_unknown_blog_gets_an_error_and_the_socket_closes(self):
        ws = ws_connect(self.live_server_ws_url + "/liveblog/nope/stream/")
        self.assertEqual(recv_json(ws), {"error": "bad_slug"})
        with self.assertRaises(ConnectionClosed):
            ws.recv(timeout=5)


class MultichatChecks:
    def logged_in(self, username: str, staff: bool = False):
        user = User.objects.create_user(username, password="pw", is_staff=staff)
        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.save()
        cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
        return ws_connect(self.live_server_ws_url + "/chat/stream/", additional_headers={"Cookie": cookie})

    def test_join_send_and_leave_routed_by_the_command_filter(self):
        room = Room.objects.create(title="Lobby")
        ada, bob = self.logged_in("ada"), self.logged_in("bob")
        try:
            for ws in (ada, bob):
                ws.send(json.dumps({"command": "join", "room": room.id}))
                self.assertEqual(recv_json(ws), {"join": str(room.id), "title": "Lobby"})
            ada.send(json.dumps({"command": "send", "room": room.id, "message": "hello"}))
            expected = {"room": str(room.id), "message": "hello", "username": "ada"}
            self.assertEqual(recv_json(ada), expected)
            self.assertEqual(recv_json(bob), expected)
            bob.send(json.dumps({"command": "leave", "room": room.id}))
            self.assertEqual(recv_json(bob), {"leave": str(room.id)})
        finally:
            ada.close()
            bob.close()

    def test_client_errors_are_answered(self):
        staff_room = Room.objects.create(title="Staff", staff_only=True)
        ws = self.logged_in("carol")
        anonymous = ws_connect(self.live_server_ws_url + "/chat/stream/")
        try:
            ws.send(json.dumps({"command": "join", "room": staff_room.id}))
            self.assertEqual(recv_json(ws), {"error": "ROOM_ACCESS_DENIED"})
            ws.send(json.dumps({"command": "join", "room": 9999}))
            self.assertEqual(recv_json(ws), {"error": "ROOM_INVALID"})
            ws.send(json.dumps({"command": "send", "room": staff_room.id, "message": "x"}))
            self.assertEqual(recv_json(ws), {"error": "ROOM_ACCESS_DENIED"})
            anonymous.send(json.dumps({"command": "join", "room": staff_room.id}))
            self.assertEqual(recv_json(anonymous), {"error": "USER_HAS_TO_LOGIN"})
        finally:
            ws.close()
            anonymous.close()


class DataBindingChecks:
    def test_changes_made_through_one_socket_reach_every_socket(self):
        first = ws_connect(self.live_server_ws_url + "/binding/")
        second = ws_connect(self.live_server_ws_url + "/binding/")
        try:
            first.send(
                json.dumps({"stream": "intval", "payload": {"action": "create", "data": {"name": "x", "value": 1}}})
            )
            created = [recv_json(ws) for ws in (first, second)]
            self.assertEqual(created[0], created[1])
            payload = created[0]["payload"]
            self.assertEqual(
                (created[0]["stream"], payload["action"], payload["data"]),
                ("intval", "create", {"name": "x", "value": 1}),
            )
            pk = payload["pk"]
            second.send(
                json.dumps({"stream": "intval", "payload": {"action": "update", "pk": pk, "data": {"value": 7}}})
            )
            for ws in (first, second):
                self.assertEqual(recv_json(ws)["payload"]["data"], {"name": "x", "value": 7})
            self.assertEqual(IntegerValue.objects.get(pk=pk).value, 7)
        finally:
            first.close()
            second.close()

    def test_a_save_in_the_test_process_is_broadcast_and_anonymous_delete_is_refused(self):
        ws = ws_connect(self.live_server_ws_url + "/binding/")
        try:
            value = IntegerValue.objects.create(name="from-test", value=3)
            frame = recv_json(ws)
            self.assertEqual((frame["payload"]["action"], frame["payload"]["pk"]), ("create", value.pk))
            ws.send(json.dumps({"stream": "intval", "payload": {"action": "delete", "pk": value.pk}}))
            ws.send(
                json.dumps({"stream": "intval", "payload": {"action": "update", "pk": value.pk, "data": {"value": 4}}})
            )
            self.assertEqual(recv_json(ws)["payload"]["action"], "update")  # the delete was refused
            self.assertTrue(IntegerValue.objects.filter(pk=value.pk).exists())
        finally:
            ws.close()


class LiveServerChecks:
    """What ChannelLiveServerTestCase refuses, and that its processes are the real ones."""

    def test_the_live_processes_serve_http_too(self):
        import urllib.request

        with urllib.request.urlopen(self.live_server_url + "/", timeout=10) as response:
            self.assertEqual(response.read(), b"OK")


@contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """`os.environ` with `values` set, restored after: what the live processes inherit when they start."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class PortedApps(LiveBlogChecks, MultichatChecks, DataBindingChecks, LiveServerChecks, ChannelLiveServerTestCase):
    """Every app's checks, served by one set of live processes whose layer uses `topology`'s servers.

    The key prefix is the class's own: the live server flushes it around every test, and the class removes it
    from every server of the topology before the topology's private servers stop.
    """

    __test__ = False  # a base: the subclasses below name the topology
    topology: str

    @classmethod
    def setUpClass(cls) -> None:
        running = cls.enterClassContext(topologies.started(cls.topology))
        cls.layer_prefix = f"t{uuid.uuid4().hex[:10]}:"
        cls.addClassCleanup(running.flush, cls.layer_prefix)
        layers = copy.deepcopy(settings.CHANNEL_LAYERS)
        default = layers["default"]
        default["CONFIG"] = {**default["CONFIG"], "hosts": running.hosts, "prefix": cls.layer_prefix}
        # The same TEST_CONFIG as tests.apps.topology_settings computes in the live processes.
        default["TEST_CONFIG"] = {
            **default["TEST_CONFIG"],
            "hosts": running.hosts,
            "prefix": cls.layer_prefix + "live:",
        }
        cls.enterClassContext(override_settings(CHANNEL_LAYERS=layers))
        live_env = {
            "DJANGO_SETTINGS_MODULE": "tests.apps.topology_settings",
            "TEST_LAYER_HOSTS": json.dumps(running.hosts),
            "TEST_LAYER_PREFIX": cls.layer_prefix,
        }
        before = running.connections_received()
        with environ(live_env):
            super().setUpClass()
        # Before this process's own layer connects (the first flush): the live processes use the topology.
        running.wait_for_connections(before)


class PortedAppsOnURL(LiveBlogChecks, MultichatChecks, DataBindingChecks, LiveServerChecks, ChannelLiveServerTestCase):
    """`PortedApps` on a layer other than Redis, selected by a URL (`tests.apps.topology_settings.url_layer`).

    A subclass gives `url(prefix)` and `remove(prefix)`: the layer's objects under the class's own prefix are
    removed after the live processes stop.
    """

    __test__ = False

    @classmethod
    def url(cls, prefix: str) -> str:
        raise NotImplementedError

    @classmethod
    def remove(cls, prefix: str) -> None:
        raise NotImplementedError

    @classmethod
    def setUpClass(cls) -> None:
        cls.layer_prefix = f"t{uuid.uuid4().hex[:12]}"
        url = cls.url(cls.layer_prefix)
        # Class cleanups run after tearDownClass, so after the live processes have stopped.
        cls.addClassCleanup(cls.remove, cls.layer_prefix)
        layers = {**settings.CHANNEL_LAYERS, "default": url_layer(url, cls.layer_prefix)}
        cls.enterClassContext(override_settings(CHANNEL_LAYERS=layers))
        live_env = {
            "DJANGO_SETTINGS_MODULE": "tests.apps.topology_settings",
            "TEST_LAYER_URL": url,
            "TEST_LAYER_PREFIX": cls.layer_prefix,
        }
        with environ(live_env):
            super().setUpClass()


class PortedAppsOnOne(PortedApps):
    __test__ = True
    topology = "one"


class PortedAppsOnTwoShards(PortedApps):
    __test__ = True
    topology = "two_shards"


class PortedAppsOnSentinel(PortedApps):
    __test__ = True
    topology = "sentinel"


class PortedAppsOnCluster(PortedApps):
    __test__ = True
    topology = "cluster"


def test_in_memory_sqlite_and_local_layers_are_refused(settings):
    import pytest
    from django.core.exceptions import ImproperlyConfigured
    from django.db import connections

    saved = connections["default"].settings_dict["NAME"]
    connections["default"].settings_dict["NAME"] = ":memory:"
    try:
        with pytest.raises(ImproperlyConfigured, match="in-memory SQLite"):
            ChannelLiveServerTestCase._test_databases()
    finally:
        connections["default"].settings_dict["NAME"] = saved
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_core.layers.InMemoryChannelLayer",
            "ROUTING": "tests.project.routing.channel_routing",
        }
    }

    class Local(ChannelLiveServerTestCase):
        def runTest(self):
            pass

    with pytest.raises(ImproperlyConfigured, match="other processes can reach") as raised:
        Local.setUpClass()
    # The options (TEST_CONFIG, CONFIG) cannot make an in-memory layer reachable: the message names BACKEND.
    assert str(raised.value).endswith(
        ": set CHANNEL_LAYERS['default']['BACKEND'] to 'channels_core.layers.RedisChannelLayer' "
        "(TEST_CONFIG, or else CONFIG, holds its options)"
    )
