from django.contrib import admin

from .models import Message, Post, Room, Value

admin.site.register(Room)
admin.site.register(Message)
admin.site.register(Post)
admin.site.register(Value)
