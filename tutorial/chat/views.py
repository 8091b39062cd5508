from django.shortcuts import redirect, render
from django.utils.text import slugify

from .models import Room


def index(request):
    name = slugify(request.GET.get("room", ""))
    if name:
        return redirect("room", room_name=name)
    return render(request, "chat/index.html", {"rooms": Room.objects.order_by("name")})


def room(request, room_name):
    room, _ = Room.objects.get_or_create(name=room_name)
    return render(request, "chat/room.html", {"room": room, "messages": room.messages.all()})
