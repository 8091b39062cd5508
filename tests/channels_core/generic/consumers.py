"""Generic consumers used by the tests in this package (module-level, so routes can name them)."""

from __future__ import annotations

from channels_core.generic import BaseConsumer, JsonWebsocketConsumer, WebsocketConsumer, WebsocketDemultiplexer

calls: list = []


class Counter(BaseConsumer):
    method_mapping = {"counter.add": "add", "counter.show": "show"}
    channel_session = True

    def add(self, message, **kwargs):
        message.channel_session["n"] = message.channel_session.get("n", 0) + message["by"]

    def show(self, message, **kwargs):
        message.reply_channel.send({"n": message.channel_session.get("n", 0)})


class Echo(WebsocketConsumer):
    groups = ["echoers"]

    def connect(self, message, **kwargs):
        calls.append(("connect", self.path, kwargs))
        super().connect(message, **kwargs)

    def receive(self, text=None, bytes=None, **kwargs):
        if text == "close":
            self.close()
        elif text is not None:
            self.send(text=text.upper())
        else:
            self.send(bytes=bytes[::-1])

    def disconnect(self, message, **kwargs):
        calls.append(("disconnect", message["code"]))


class Room(WebsocketConsumer):
    def connection_groups(self, room, **kwargs):
        return [f"room-{room}"]


class WhoAmI(JsonWebsocketConsumer):
    http_user = True

    def receive(self, content, **kwargs):
        self.send({"user": self.message.user.username, "got": content})


class Shout(JsonWebsocketConsumer):
    @classmethod
    def encode_json(cls, content):
        return super().encode_json(content).upper()

    def receive(self, content, **kwargs):
        self.send(content)

    def invalid_frame(self, reason):
        self.send({"error": reason}, close=4000)


class Ping(JsonWebsocketConsumer):
    def receive(self, content, multiplexer=None, **kwargs):
        multiplexer.send({"pong": content["n"]})

    def connect(self, message, multiplexer=None, **kwargs):
        calls.append(("ping-connect", multiplexer.stream))

    def disconnect(self, message, multiplexer=None, **kwargs):
        calls.append(("ping-disconnect", multiplexer.stream))


class Rude(JsonWebsocketConsumer):
    def receive(self, content, **kwargs):
        self.send({"direct": True})  # behind a demultiplexer: not allowed


def counter_stream(message, multiplexer=None, **kwargs):
    if message.channel.name == "websocket.receive":
        multiplexer.send({"count": len(message["text"])})


class Demux(WebsocketDemultiplexer):
    consumers = {"ping": Ping, "count": counter_stream, "rude": Rude}
