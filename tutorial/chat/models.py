from django.db import models


class Room(models.Model):
    """A chat room: its page shows its stored messages, and its group reaches every socket open on it."""

    name = models.SlugField(unique=True)

    @property
    def group_name(self) -> str:
        return f"chat-{self.name}"

    def __str__(self) -> str:
        return self.name


class Message(models.Model):
    room = models.ForeignKey(Room, related_name="messages", on_delete=models.CASCADE)
    author = models.CharField(max_length=50)
    text = models.TextField(max_length=2000)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]

    def as_dict(self) -> dict:
        return {"author": self.author, "text": self.text, "created": self.created.isoformat()}
