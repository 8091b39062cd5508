import json

from channels import Group
from django.db import models


class Room(models.Model):
    title = models.CharField(max_length=255)
    staff_only = models.BooleanField(default=False)

    def __str__(self):
        return self.title

    @property
    def websocket_group(self):
        return Group(f"room-{self.id}")

    def send_message(self, message, user):
        self.websocket_group.send(
            {"text": json.dumps({"room": str(self.id), "message": message, "username": user.username})}
        )
