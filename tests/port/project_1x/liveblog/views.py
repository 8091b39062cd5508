from django.shortcuts import render

from .models import Liveblog


def index(request):
    return render(request, "index.html", {"liveblogs": Liveblog.objects.all()})
