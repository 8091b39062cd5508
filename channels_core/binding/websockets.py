"""`WebsocketBinding`: data binding over (multiplexed) WebSockets, as in Channels 1.x.

Outbound frames are `{"stream": stream, "payload": {"action", "pk", "data",
"model"}}`; inbound frames carry `{"action", "pk", "data"}` as the text of a
`websocket.receive` (a demultiplexer hands it over as such).

Differences from 1.x: `create` and `update` only set the fields the binding
allows (1.x let `create` set any field), and an inbound frame that is not
JSON, or lacks `action`, is logged and dropped instead of raising.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder

from ..generic.websockets import SLIGHT_ORDERING_REMOVED, WebsocketMultiplexer
from .base import Binding

logger = logging.getLogger("channels_core.binding")


class InvalidInbound(ValueError):
    """An inbound frame a binding cannot use."""


class WebsocketBinding(Binding):
    strict_ordering = False
    slight_ordering = False

    @classmethod
    def encode(cls, stream: str, payload: dict) -> dict:
        return WebsocketMultiplexer.encode(stream, payload)

    def serialize(self, instance: Any, action: str) -> dict:
        return {"action": action, "pk": instance.pk, "data": self.serialize_data(instance), "model": self.model_label}

    def _field_names(self, instance: Any = None) -> list[str] | None:
        """The fields sent and accepted (None: all of them)."""
        if self.fields is not None:
            return None if list(self.fields) == ["__all__"] or self.fields == "__all__" else list(self.fields)
        meta = (instance or self.model)._meta
        return [f.name for f in meta.get_fields() if f.concrete and f.name not in (self.exclude or ())]

    def serialize_data(self, instance: Any) -> dict:
        data = serializers.serialize("json", [instance], fields=self._field_names(instance))
        return json.loads(data)[0]["fields"]

    @classmethod
    def get_handler(cls) -> Any:
        if cls.slight_ordering:
            raise ValueError(f"{cls.__qualname__}: {SLIGHT_ORDERING_REMOVED}")
        handler = super().get_handler()
        if cls.strict_ordering:
            from ..ordering import enforce_ordering

            return enforce_ordering(handler)
        return handler

    @classmethod
    def trigger_inbound(cls, message: Any, **kwargs: Any) -> None:
        if message.channel.name != "websocket.receive":
            return  # connect and disconnect carry no change
        try:
            super().trigger_inbound(message, **kwargs)
        except InvalidInbound as exc:
            logger.warning("%s dropped a frame from %s: %s", cls.__qualname__, message.reply_channel, exc)

    def deserialize(self, message: Any) -> tuple[str, Any, Any]:
        try:
            body = json.loads(message["text"])
        except (TypeError, ValueError, KeyError) as exc:
            raise InvalidInbound(f"not a JSON text frame ({exc})") from None
        if not isinstance(body, dict) or "action" not in body:
            raise InvalidInbound(f'expected {{"action", "pk", "data"}}, got {str(body)[:200]}')
        data = body.get("data")
        if data is not None and not isinstance(data, dict):
            raise InvalidInbound("'data' must be an object")
        return body["action"], body.get("pk"), data or {}

    def _allowed(self, data: dict) -> dict:
        names = self._field_names()
        return dict(data) if names is None else {k: v for k, v in data.items() if k in names}

    def _hydrate(self, pk: Any, data: dict) -> Any:
        return next(serializers.deserialize("python", [{"pk": pk, "model": self.model_label, "fields": data}]))

    def create(self, data: dict) -> None:
        self._hydrate(None, self._allowed(data)).save()

    def update(self, pk: Any, data: dict) -> None:
        instance = self.model.objects.get(pk=pk)
        allowed = self._allowed(data)
        hydrated = self._hydrate(pk, allowed)
        for name in allowed:
            setattr(instance, name, getattr(hydrated.object, name))
        instance.save()

    def delete(self, pk: Any) -> None:
        self.model.objects.get(pk=pk).delete()


class WebsocketBindingWithMembers(WebsocketBinding):
    """Also sends `send_members`: attributes, properties or zero-argument methods, dotted paths allowed
    (`"author.username"` is sent as `author__username`)."""

    send_members: list[str] = []
    encoder = DjangoJSONEncoder()

    def serialize_data(self, instance: Any) -> dict:
        data = super().serialize_data(instance)
        members = {}
        for path in self.send_members:
            value = instance
            for part in path.split("."):
                value = getattr(value, part)
            members[path.replace(".", "__")] = value() if callable(value) else value
        data.update(json.loads(self.encoder.encode(members)))
        return data
