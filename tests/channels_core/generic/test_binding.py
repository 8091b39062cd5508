"""Data binding in process: outbound create/update/delete to the right groups, inbound with permissions."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from channels_core.binding import WebsocketBinding
from channels_core.test import ChannelTestCase, TransactionChannelTestCase, WSClient, apply_routes
from tests.project.app.bindings import Demultiplexer, IntegerValueBinding
from tests.project.app.models import IntegerValue

ROUTES = [Demultiplexer.as_route(path=r"^/binding/$")]


def frames(client):
    out = []
    while (frame := client.receive()) is not None:
        out.append(frame)
    return out


def payloads(client, stream="intval"):
    return [f["payload"] for f in frames(client) if f.get("stream") == stream]


@apply_routes(ROUTES)
class OutboundTests(TransactionChannelTestCase):
    def test_create_update_delete_reach_the_group(self):
        client = WSClient()
        client.join_group("binding.values")
        value = IntegerValue.objects.create(name="a", value=1)
        value.value = 2
        value.save()
        pk = value.pk
        value.delete()
        got = payloads(client)
        self.assertEqual([p["action"] for p in got], ["create", "update", "delete"])
        self.assertEqual(
            got[0], {"action": "create", "pk": pk, "data": {"name": "a", "value": 1}, "model": "app.integervalue"}
        )
        self.assertEqual(got[1]["data"]["value"], 2)

    def test_moving_between_groups_sends_delete_to_the_old_and_create_to_the_new(self):
        public, private = WSClient(), WSClient()
        public.join_group("binding.values")
        private.join_group("binding.private")
        value = IntegerValue.objects.create(name="m", value=5)
        value.value = -1
        value.save()
        self.assertEqual([p["action"] for p in payloads(public)], ["create", "delete"])
        self.assertEqual([p["action"] for p in payloads(private)], ["create"])

    def test_members_and_exclude(self):
        client = WSClient()
        client.join_group("binding.doubled")
        IntegerValue.objects.create(name="abc", value=21, secret="hidden")
        (payload,) = payloads(client, "intval-doubled")
        self.assertEqual(payload["data"]["double"], 42)
        self.assertEqual(payload["data"]["name__upper"], "ABC")
        self.assertNotIn("secret", payload["data"])

    def test_a_rolled_back_save_tells_nobody(self):
        client = WSClient()
        client.join_group("binding.values")
        try:
            with transaction.atomic():
                IntegerValue.objects.create(name="ghost", value=1)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        self.assertEqual(payloads(client), [])

    def test_a_binding_without_fields_or_exclude_is_refused(self):
        with self.assertRaisesRegex(ValueError, "set `fields`"):

            class Broken(WebsocketBinding):
                model = IntegerValue
                stream = "x"


@apply_routes(ROUTES)
class InboundTests(TransactionChannelTestCase):
    def connected(self):
        client = WSClient()
        client.send_and_consume("websocket.connect", path="/binding/")
        return client

    def send(self, client, payload):
        client.send_and_consume("websocket.receive", path="/binding/", text={"stream": "intval", "payload": payload})

    def test_create_update_through_the_demultiplexer_only_touch_allowed_fields(self):
        client = self.connected()
        self.send(client, {"action": "create", "data": {"name": "n", "value": 3, "secret": "set by client"}})
        value = IntegerValue.objects.get(name="n")
        self.assertEqual((value.value, value.secret), (3, ""))
        self.send(client, {"action": "update", "pk": value.pk, "data": {"value": 4, "secret": "again"}})
        value.refresh_from_db()
        self.assertEqual((value.value, value.secret), (4, ""))
        self.assertEqual([p["action"] for p in payloads(client)], ["create", "update"])

    def test_delete_needs_a_logged_in_user(self):
        value = IntegerValue.objects.create(name="keep", value=1)
        anonymous = self.connected()
        self.send(anonymous, {"action": "delete", "pk": value.pk})
        self.assertTrue(IntegerValue.objects.filter(pk=value.pk).exists())
        User.objects.create_user("bob", password="pw")
        member = WSClient()
        self.assertTrue(member.login(username="bob", password="pw"))
        member.send_and_consume("websocket.connect", path="/binding/")
        self.send(member, {"action": "delete", "pk": value.pk})
        self.assertFalse(IntegerValue.objects.filter(pk=value.pk).exists())

    def test_bad_frames_are_logged_and_dropped(self):
        client = self.connected()
        with self.assertLogs("channels_core.binding", "WARNING") as logs:
            self.send(client, {"pk": 1})
        self.assertIn("expected", logs.output[0])
        with self.assertRaisesRegex(ValueError, "Bad action"):
            self.send(client, {"action": "explode"})


class RegistrationTests(ChannelTestCase):
    def test_bindings_are_registered_when_django_is_ready(self):
        from django.db.models.signals import post_save

        receivers = post_save._live_receivers(IntegerValue)
        receivers = receivers[0] if isinstance(receivers, tuple) else receivers
        names = {getattr(r, "__qualname__", "") for r in receivers}
        self.assertIn("Binding.post_save_receiver", names)
        self.assertEqual(IntegerValueBinding.model_label, "app.integervalue")
