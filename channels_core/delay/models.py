"""`DelayedMessage`: one message waiting for its due date (the Channels 1.x model, same fields)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import models
from django.utils import timezone

from . import encoding


class DelayedMessageQuerySet(models.QuerySet):
    def is_due(self) -> DelayedMessageQuerySet:
        """Messages whose due date has passed."""
        return self.filter(due_date__lte=timezone.now())


class DelayedMessage(models.Model):
    """A message to send to `channel_name` at `due_date`.

    `content` is JSON text as in Channels 1.x (bytes values are tagged, see
    `channels_core.delay.encoding`); use `get_content()` / `set_content()`
    for the dict. Setting `delay` (milliseconds) sets `due_date` from now,
    also as a constructor argument: `DelayedMessage(channel_name=..., delay=500)`.
    """

    due_date = models.DateTimeField(db_index=True)
    channel_name = models.CharField(max_length=512)
    content = models.TextField()
    attempts = models.PositiveIntegerField(default=0, help_text="sends refused with ChannelFull so far")

    objects = DelayedMessageQuerySet.as_manager()

    class Meta:
        verbose_name = "delayed message"

    @property
    def delay(self) -> float | None:
        """The delay last set on this object, in milliseconds (None if never set, as in 1.x)."""
        return getattr(self, "_delay", None)

    @delay.setter
    def delay(self, milliseconds: float) -> None:
        self._delay = milliseconds
        self.due_date = timezone.now() + timedelta(milliseconds=milliseconds)

    def get_content(self) -> dict:
        """The message dict to deliver."""
        return encoding.loads(self.content)

    def set_content(self, content: dict) -> None:
        """Store `content` (ValueError if it holds something a message cannot)."""
        self.content = encoding.dumps(content)

    def send(self, channel_layer: Any = None, requeue_delay: float = 1000) -> None:
        """Send now and delete the row; if the channel is full, retry `requeue_delay` ms later (1.x API)."""
        if channel_layer is None:
            from channels_core import DEFAULT_CHANNEL_LAYER
            from channels_core.asgi import channel_layers

            channel_layer = channel_layers[DEFAULT_CHANNEL_LAYER]
        try:
            channel_layer.send(self.channel_name, self.get_content())
        except channel_layer.ChannelFull:
            self.delay = requeue_delay
            self.save()
        else:
            self.delete()

    def __str__(self) -> str:
        return f"{self.channel_name} at {self.due_date.isoformat() if self.due_date else '?'}"
