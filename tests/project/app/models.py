from django.db import models

from channels_core import Group


class Note(models.Model):
    """Saving a note broadcasts it to the `notes` group (a Group send from a model save())."""

    text = models.CharField(max_length=200)

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        Group("notes").send({"text": f"note:{self.text}"})


class IntegerValue(models.Model):
    """The databinding example's model: a named integer, bound to WebSocket clients."""

    name = models.CharField(max_length=100, unique=True)
    value = models.IntegerField(default=0)
    secret = models.CharField(max_length=100, default="", blank=True)

    def double(self):
        return self.value * 2
