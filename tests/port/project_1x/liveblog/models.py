import json

from channels import Group
from django.db import models


class Liveblog(models.Model):
    """A liveblog: new posts appear on every open page as they are saved."""

    title = models.CharField(max_length=255)
    slug = models.SlugField(unique=True)

    def __unicode__(self):
        return self.title

    def __str__(self):
        return self.title

    @property
    def group_name(self):
        # The Group name stays a plain string: the port must not touch it.
        return f"liveblog-{self.slug}"


class Post(models.Model):
    liveblog = models.ForeignKey(Liveblog, related_name="posts", on_delete=models.CASCADE)
    created = models.DateTimeField(auto_now_add=True)
    body = models.TextField()

    def save(self, *args, **kwargs):
        result = super().save(*args, **kwargs)
        Group(self.liveblog.group_name).send({"text": json.dumps({"id": self.id, "html": self.body})})
        return result
