from django.shortcuts import redirect, render
from django.utils.text import slugify

from .consumers import member_count
from .models import Message, Post, Room, Value


def index(request):
    """The room list, with how many are in each room now (the page's socket keeps the counts live)."""
    if request.method == "POST":
        slug = slugify(request.POST.get("room", ""))[:50]
        if slug:
            return redirect("room", room=slug)
    rooms = [{"slug": room.slug, "members": member_count(room.slug)} for room in Room.objects.order_by("slug")[:200]]
    return render(request, "chat/index.html", {"rooms": rooms})


def room(request, room):
    room_obj = Room.objects.filter(slug=room).first()
    history = list(Message.objects.filter(room=room_obj)) if room_obj else []
    return render(
        request,
        "chat/room.html",
        {"room": room, "history": [m.as_dict() for m in history[-100:]]},
    )


def liveblog(request):
    return render(request, "chat/liveblog.html", {"posts": Post.objects.all()[:50]})


def values(request):
    rows = [{"pk": v.pk, "name": v.name, "value": v.value} for v in Value.objects.order_by("name")]
    return render(request, "chat/values.html", {"values": rows})
