"""The databinding example: IntegerValue rows kept in step with every socket on /binding/."""

from channels_core.binding import WebsocketBinding, WebsocketBindingWithMembers
from channels_core.generic import WebsocketDemultiplexer

from .models import IntegerValue


class IntegerValueBinding(WebsocketBinding):
    model = IntegerValue
    stream = "intval"
    fields = ["name", "value"]

    @classmethod
    def group_names(cls, instance):
        # Negative values are private: they leave the public group (clients see a delete).
        return ["binding.values"] if instance.value >= 0 else ["binding.private"]

    def has_permission(self, user, action, pk):
        # Anyone may create and update; deleting needs a logged-in user.
        return action != "delete" or user.is_authenticated


class IntegerValueWithDouble(WebsocketBindingWithMembers):
    model = "app.IntegerValue"
    stream = "intval-doubled"
    exclude = ["secret"]
    send_members = ["double", "name.upper"]

    @classmethod
    def group_names(cls, instance):
        return ["binding.doubled"]

    def has_permission(self, user, action, pk):
        return False


class Demultiplexer(WebsocketDemultiplexer):
    http_user = True
    consumers = {"intval": IntegerValueBinding.consumer}
    groups = ["binding.values"]


routes = [Demultiplexer.as_route(path=r"^/$")]
