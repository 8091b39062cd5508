"""The Channels 1.x way of testing outbound bindings works in a `ChannelTestCase` (a transaction per test).

Bindings send when the transaction commits, which a `TestCase` never does;
`ChannelTestCase` runs on-commit callbacks as if the test's own transaction
were not there: at once outside the test's `atomic()` blocks, when the
outermost of them exits otherwise, and never for a rolled-back block.
"""

from __future__ import annotations

from django.db import transaction

from channels_core.test import ChannelTestCase, WSClient
from tests.project.app.models import IntegerValue


def _actions(client):
    out = []
    while (frame := client.receive()) is not None:
        out.append(frame["payload"]["action"])
    return out


class BindingInChannelTestCase(ChannelTestCase):
    def test_create_then_receive(self):
        client = WSClient()
        client.join_group("binding.values")
        value = IntegerValue.objects.create(name="a", value=1)
        received = client.receive()
        self.assertEqual(received["stream"], "intval")
        self.assertEqual(
            received["payload"],
            {"action": "create", "pk": value.pk, "data": {"name": "a", "value": 1}, "model": "app.integervalue"},
        )
        value.value = 2
        value.save()
        value.delete()
        self.assertEqual(_actions(client), ["update", "delete"])

    def test_inside_an_atomic_block_sends_when_it_exits(self):
        client = WSClient()
        client.join_group("binding.values")
        with transaction.atomic():
            IntegerValue.objects.create(name="b", value=1)
            with transaction.atomic():
                IntegerValue.objects.create(name="c", value=1)
            self.assertIsNone(client.receive())
        self.assertEqual(_actions(client), ["create", "create"])

    def test_a_rolled_back_block_sends_nothing(self):
        client = WSClient()
        client.join_group("binding.values")
        with transaction.atomic():
            IntegerValue.objects.create(name="kept", value=1)
            try:
                with transaction.atomic():
                    IntegerValue.objects.create(name="lost", value=1)
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
        self.assertEqual([f["payload"]["data"]["name"] for f in iter(client.receive, None)], ["kept"])

    def test_a_plain_on_commit_callback_runs_at_once(self):
        ran = []
        transaction.on_commit(lambda: ran.append(1))
        self.assertEqual(ran, [1])
