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


class LiveBlog(models.Model):
    """The liveblog example: a blog whose posts appear in every open page as they are saved."""

    title = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)

    @property
    def group_name(self):
        return f"liveblog-{self.slug}"


class Post(models.Model):
    liveblog = models.ForeignKey(LiveBlog, related_name="posts", on_delete=models.CASCADE)
    body = models.TextField()

    def save(self, *args, **kwargs):
        import json

        super().save(*args, **kwargs)
        Group(self.liveblog.group_name).send({"text": json.dumps({"id": self.id, "html": self.body})})


class Room(models.Model):
    """The multichat example's rooms; staff-only rooms refuse everyone else."""

    title = models.CharField(max_length=255)
    staff_only = models.BooleanField(default=False)

    @property
    def group_name(self):
        return f"room-{self.id}"
