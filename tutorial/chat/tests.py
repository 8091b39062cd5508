from channels_core.test import ChannelTestCase, WSClient

from .models import Message


class ChatTests(ChannelTestCase):
    def test_a_message_reaches_everyone_in_the_room_and_is_stored(self):
        alice, bob = WSClient(), WSClient()
        alice.send_and_consume("websocket.connect", path="/ws/chat/lobby/")
        bob.send_and_consume("websocket.connect", path="/ws/chat/lobby/")

        alice.send_and_consume("websocket.receive", text={"author": "alice", "text": "hi"}, path="/ws/chat/lobby/")

        self.assertEqual(bob.receive()["text"], "hi")
        self.assertEqual(alice.receive()["text"], "hi")
        self.assertEqual(Message.objects.get().author, "alice")
