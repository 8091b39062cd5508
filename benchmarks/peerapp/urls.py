"""The one HTTP view every stack serves: GET / answers "OK"."""

from django.http import HttpResponse
from django.urls import path


def hello(request):
    return HttpResponse(b"OK", content_type="text/plain")


urlpatterns = [path("", hello)]
