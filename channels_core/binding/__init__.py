"""Data binding (Channels 1.x `channels.binding`): models kept in step with WebSocket clients."""

from .base import Binding, BindingMetaclass
from .websockets import WebsocketBinding, WebsocketBindingWithMembers

__all__ = ["Binding", "BindingMetaclass", "WebsocketBinding", "WebsocketBindingWithMembers"]
