"""Views for the handler unit tests (ROOT_URLCONF is switched to this module there)."""

import hashlib
import io

from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path, reverse
from django.views.decorators.csrf import csrf_exempt

from channels_core.exceptions import ResponseLater

STATE: dict = {}


@csrf_exempt
def body(request):
    data = request.body
    return JsonResponse({"length": len(data), "sha1": hashlib.sha1(data).hexdigest()})


@csrf_exempt
def lines(request):
    return JsonResponse({"lines": [line.decode() for line in request]})


@csrf_exempt
def form(request):
    return JsonResponse({"post": {k: request.POST.getlist(k) for k in request.POST}})


@csrf_exempt
def upload(request):
    f = request.FILES["file"]
    data = f.read()
    return JsonResponse({"name": f.name, "size": len(data), "sha1": hashlib.sha1(data).hexdigest()})


def protected(request):
    """CSRF-protected: the middleware reads POST before this runs."""
    return HttpResponse("protected ok")


@csrf_exempt
def ignores_body(request):
    return HttpResponse("did not read the body")


@csrf_exempt
def later(request):
    STATE["reply_channel"] = request.reply_channel
    raise ResponseLater()


def cookies(request):
    response = HttpResponse("cookies")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2", httponly=True, path="/x/")
    response["X-Mixed-Case"] = "Value"
    return response


def big(request):
    size = int(request.GET["size"])
    return HttpResponse(bytes(i % 256 for i in range(size)), content_type="application/octet-stream")


def stream(request):
    def parts():
        yield b"first"
        yield b""
        yield b"x" * (700 * 1024)
        yield b"last"

    return StreamingHttpResponse(parts(), content_type="text/plain")


class TrackedBytesIO(io.BytesIO):
    def close(self):
        STATE["file_closed"] = True
        super().close()


def file(request):
    size = int(request.GET["size"])
    return FileResponse(TrackedBytesIO(bytes(i % 251 for i in range(size))), filename="data.bin")


def error(request):
    raise RuntimeError("this view always fails")


def whereami(request):
    return JsonResponse(
        {
            "reverse": reverse("whereami"),
            "path": request.path,
            "path_info": request.path_info,
            "script_name": request.META["SCRIPT_NAME"],
        }
    )


def meta(request):
    return JsonResponse({k: v for k, v in request.META.items() if isinstance(v, (str, int, bool))})


class SpecialMiddleware:
    """Raises ResponseLater, or reads the body, before any view runs (outside Django's view handling)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/mw-later/":
            raise ResponseLater()
        if request.path == "/mw-body/":
            request.body  # noqa: B018
        return self.get_response(request)


urlpatterns = [
    path("body/", body),
    path("lines/", lines),
    path("form/", form),
    path("upload/", upload),
    path("protected/", protected),
    path("ignores-body/", ignores_body),
    path("later/", later),
    path("cookies/", cookies),
    path("big/", big),
    path("stream/", stream),
    path("file/", file),
    path("error/", error),
    path("whereami/", whereami, name="whereami"),
    path("meta/", meta),
]
