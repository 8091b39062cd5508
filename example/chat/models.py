import json

from django.db import models

from channels_core import Group


class Room(models.Model):
    slug = models.SlugField(unique=True)

    @staticmethod
    def group_name_for(slug: str) -> str:
        """The group of room `slug`'s open sockets."""
        return f"chat-{slug}"

    @property
    def group_name(self) -> str:
        return self.group_name_for(self.slug)

    def __str__(self) -> str:
        return self.slug


class Message(models.Model):
    """A chat message: stored, shown to people who open the room later, broadcast to those in it now."""

    room = models.ForeignKey(Room, related_name="messages", on_delete=models.CASCADE)
    author = models.CharField(max_length=50)
    text = models.TextField(max_length=2000)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]

    def as_dict(self) -> dict:
        # `created` in UTC, ISO 8601: each page shows it in its reader's time zone (Intl.DateTimeFormat).
        return {"author": self.author, "text": self.text, "created": self.created.isoformat()}


class Post(models.Model):
    """A live blog post: every open /liveblog/ page shows it as soon as it is saved (say, from the admin)."""

    title = models.CharField(max_length=200)
    body = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        Group("liveblog").send(
            {
                "text": json.dumps(
                    {"id": self.id, "title": self.title, "body": self.body, "created": self.created.isoformat()}
                )
            }
        )

    def __str__(self) -> str:
        return self.title


class Value(models.Model):
    """A named counter, kept in step with every open /values/ page by data binding."""

    name = models.CharField(max_length=50, unique=True)
    value = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"
