"""`Binding`: keep clients in step with a model, and let them change it (Channels 1.x data binding).

Outbound: a binding connects to its model's save and delete signals. Before
a change it notes which groups the instance belonged to (`group_names`), after
it which it belongs to now, and sends `delete` to the groups it left,
`update` to those it stayed in, `create` to those it joined, in that order.

Inbound: `Binding.consumer` is a consumer; each message is `deserialize`d to
`(action, pk, data)`, checked with `has_permission(user, action, pk)`, then
`create(data)`, `update(pk, data)` or `delete(pk)` runs.

Every subclass with a `model` is registered when Django is ready (or at
once, if it is defined later). Differences from 1.x: outbound messages wait
for the transaction to commit (a rolled-back save tells nobody); an update's
old groups come from the stored row (1.x asked the changed instance, so a
row moving between groups never sent the old ones a delete); a registration
mistake names the binding.
"""

from __future__ import annotations

import logging
from typing import Any

from django.apps import apps
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

from ..auth import channel_session_user
from ..channel import Group
from ..sessions import channel_session

logger = logging.getLogger("channels_core.binding")

CREATE = "create"
UPDATE = "update"
DELETE = "delete"


class BindingMetaclass(type):
    """Keeps every Binding subclass, to register them once the app registry is ready."""

    binding_classes: list[type] = []

    def __new__(mcs, name: str, bases: tuple, body: dict) -> type:
        klass = super().__new__(mcs, name, bases, body)
        if bases:
            if apps.ready:
                klass.register()  # a mistake raises here, and the class is not kept
            mcs.binding_classes.append(klass)
        return klass

    @classmethod
    def register_all(mcs) -> None:
        for binding_class in mcs.binding_classes:
            binding_class.register()


class Binding(metaclass=BindingMetaclass):
    """Base of model bindings; subclasses set `model`, `stream`, `fields` or `exclude` and the hooks."""

    model: Any = None
    stream: str | None = None
    fields: list[str] | None = None
    exclude: list[str] | None = None
    channel_session_user = True
    channel_session = False
    signal_kwargs: dict | None = None
    _registered_for: Any = None

    # -- registration ---------------------------------------------------------------

    @classmethod
    def register(cls) -> None:
        """Connect the model's signals (once); a binding without a model is abstract and skipped."""
        if cls.model is None or cls._registered_for is cls:
            return
        if cls.fields is None and cls.exclude is None:
            raise ValueError(f"{cls.__qualname__}: set `fields` (or ['__all__']) or `exclude`")
        if isinstance(cls.model, str):
            cls.model = apps.get_model(cls.model)
        cls.model_label = f"{cls.model._meta.app_label.lower()}.{cls.model._meta.object_name.lower()}"
        uid = f"channels_core.binding.{cls.__module__}.{cls.__qualname__}"
        pre_save.connect(cls.pre_save_receiver, sender=cls.model, dispatch_uid=uid + ".pre_save")
        post_save.connect(cls.post_save_receiver, sender=cls.model, dispatch_uid=uid + ".post_save")
        pre_delete.connect(cls.pre_delete_receiver, sender=cls.model, dispatch_uid=uid + ".pre_delete")
        post_delete.connect(cls.post_delete_receiver, sender=cls.model, dispatch_uid=uid + ".post_delete")
        cls._registered_for = cls

    # -- outbound -------------------------------------------------------------------

    @classmethod
    def encode(cls, stream: str, payload: dict) -> dict:
        """The message sent to the groups for `payload` on `stream`."""
        raise NotImplementedError(f"{cls.__qualname__} must implement encode(stream, payload)")

    @classmethod
    def group_names(cls, instance: Any) -> list[str]:
        """The groups that see `instance`."""
        raise NotImplementedError(f"{cls.__qualname__} must implement group_names(instance)")

    def serialize(self, instance: Any, action: str) -> dict:
        """The payload for `instance` after `action`; `{}` sends nothing."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement serialize(instance, action)")

    @classmethod
    def pre_save_receiver(cls, instance: Any, **kwargs: Any) -> None:
        cls.pre_change_receiver(instance, CREATE if instance._state.adding else UPDATE)

    @classmethod
    def post_save_receiver(cls, instance: Any, created: bool, **kwargs: Any) -> None:
        cls.post_change_receiver(instance, CREATE if created else UPDATE, **kwargs)

    @classmethod
    def pre_delete_receiver(cls, instance: Any, **kwargs: Any) -> None:
        cls.pre_change_receiver(instance, DELETE)

    @classmethod
    def post_delete_receiver(cls, instance: Any, **kwargs: Any) -> None:
        cls.post_change_receiver(instance, DELETE, **kwargs)

    @classmethod
    def pre_change_receiver(cls, instance: Any, action: str) -> None:
        if action == CREATE:
            groups: set[str] = set()
        elif action == UPDATE:
            # The groups of the row as stored: the instance in hand already holds the new values
            # (1.x asked it, so a row moving between groups never left the old ones).
            stored = type(instance)._default_manager.filter(pk=instance.pk).first()
            groups = set(cls.group_names(stored if stored is not None else instance))
        else:
            groups = set(cls.group_names(instance))
        if not hasattr(instance, "_binding_group_names"):
            instance._binding_group_names = {}
        instance._binding_group_names[cls] = groups

    @classmethod
    def post_change_receiver(cls, instance: Any, action: str, **kwargs: Any) -> None:
        old = getattr(instance, "_binding_group_names", {}).pop(cls, set())
        new = set() if action == DELETE else set(cls.group_names(instance))
        self = cls()
        self.instance = instance
        # Delete, update, create: the order Django DDP settled on, so a client never sees a
        # row twice when it moves between groups.
        self.send_messages(instance, old - new, DELETE, **kwargs)
        self.send_messages(instance, old & new, UPDATE, **kwargs)
        self.send_messages(instance, new - old, CREATE, **kwargs)

    def send_messages(self, instance: Any, group_names: set[str], action: str, **kwargs: Any) -> None:
        if not group_names:
            return
        self.signal_kwargs = kwargs
        payload = self.serialize(instance, action)
        if payload == {}:
            return
        message = self.encode(self.stream, payload)
        using = kwargs.get("using")

        def send() -> None:
            for name in sorted(group_names):
                Group(name).send(message)

        transaction.on_commit(send, using=using)

    # -- inbound --------------------------------------------------------------------

    @classmethod
    def trigger_inbound(cls, message: Any, **kwargs: Any) -> None:
        """Run one inbound message: deserialize, check permission, act."""
        self = cls()
        self.message = message
        self.kwargs = kwargs
        self.action, self.pk, self.data = self.deserialize(message)
        self.user = getattr(message, "user", None)
        self.run_action(self.action, self.pk, self.data)

    @classmethod
    def get_handler(cls) -> Any:
        handler = cls.trigger_inbound
        if cls.channel_session_user:
            return channel_session_user(handler)
        if cls.channel_session:
            return channel_session(handler)
        return handler

    @classmethod
    def consumer(cls, message: Any, **kwargs: Any) -> None:
        """Use as a consumer (or a demultiplexer stream) for inbound messages."""
        cls.get_handler()(message, **kwargs)

    def deserialize(self, message: Any) -> tuple[str, Any, Any]:
        raise NotImplementedError(f"{type(self).__qualname__} must implement deserialize(message)")

    def run_action(self, action: str, pk: Any, data: Any) -> None:
        if not self.has_permission(self.user, action, pk):
            logger.info("%s refused %s of pk=%r for %s", type(self).__qualname__, action, pk, self.user)
            return
        if action == CREATE:
            self.create(data)
        elif action == UPDATE:
            self.update(pk, data)
        elif action == DELETE:
            self.delete(pk)
        else:
            raise ValueError(f"Bad action {action!r}: use create, update or delete")

    def has_permission(self, user: Any, action: str, pk: Any) -> bool:
        raise NotImplementedError(f"{type(self).__qualname__} must implement has_permission(user, action, pk)")

    def create(self, data: Any) -> None:
        raise NotImplementedError

    def update(self, pk: Any, data: Any) -> None:
        raise NotImplementedError

    def delete(self, pk: Any) -> None:
        raise NotImplementedError
