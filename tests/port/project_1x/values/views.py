from django.shortcuts import render

from .models import IntegerValue


def index(request):
    return render(request, "index.html", {"integer_values": IntegerValue.objects.all()})
