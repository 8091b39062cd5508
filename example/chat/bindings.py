"""The data-binding page: Value rows, created and changed from any open page, shown in all of them."""

from channels_core.binding.websockets import WebsocketBinding
from channels_core.generic.websockets import WebsocketDemultiplexer

from .models import Value


class ValueBinding(WebsocketBinding):
    model = Value
    stream = "values"
    fields = ["name", "value"]

    @classmethod
    def group_names(cls, instance):
        return ["values"]

    def has_permission(self, user, action, pk):
        return action in ("create", "update")  # deleting is for the admin


class ValuesDemultiplexer(WebsocketDemultiplexer):
    consumers = {"values": ValueBinding.consumer}
    groups = ["values"]
