"""Views of every kind the HTTP bridge must serve unchanged."""

import hashlib
import io

from django.contrib.auth import authenticate, login
from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.views.decorators.csrf import csrf_exempt

from .models import Note


def index(request):
    return HttpResponse("OK")


@csrf_exempt
def echo(request):
    return JsonResponse(
        {
            "method": request.method,
            "path": request.path,
            "path_info": request.path_info,
            "script_name": request.META.get("SCRIPT_NAME"),
            "get": request.GET.dict(),
            "body_sha1": hashlib.sha1(request.body).hexdigest(),
            "body_length": len(request.body),
            "secure": request.is_secure(),
            "remote_addr": request.META.get("REMOTE_ADDR"),
            "content_type": request.META.get("CONTENT_TYPE"),
            "cookie": request.COOKIES.get("flavour"),
            "header": request.META.get("HTTP_X_CUSTOM"),
        }
    )


@csrf_exempt
def login_view(request):
    user = authenticate(request, username=request.POST.get("username"), password=request.POST.get("password"))
    if user is None:
        return HttpResponse("bad credentials", status=403)
    login(request, user)
    return HttpResponse("logged in")


def whoami(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    name = request.user.username if request.user.is_authenticated else "anonymous"
    return HttpResponse(f"{name} {request.session['visits']}")


def form(request):
    """GET shows a form with a CSRF token; POST needs it (CSRF middleware is on)."""
    from django.middleware.csrf import get_token

    if request.method == "POST":
        return HttpResponse(f"posted {request.POST.get('field')}")
    return HttpResponse(f"token:{get_token(request)}")


@csrf_exempt
def upload(request):
    f = request.FILES["file"]
    data = f.read()
    return JsonResponse(
        {"name": f.name, "size": len(data), "sha1": hashlib.sha1(data).hexdigest(), "field": request.POST.get("field")}
    )


def redirect_view(request):
    return redirect("/echo/?from=redirect")


def stream(request):
    def parts():
        for i in range(5):
            yield f"part{i}\n".encode()

    return StreamingHttpResponse(parts(), content_type="text/plain")


def file_view(request):
    size = int(request.GET.get("size", "1200000"))
    return FileResponse(io.BytesIO(bytes(i % 251 for i in range(size))), filename="data.bin")


def secure(request):
    return HttpResponse("secure" if request.is_secure() else "plain")


@csrf_exempt
def add_note(request):
    note = Note.objects.create(text=request.POST.get("text", "hello"))
    return HttpResponse(f"note {note.pk}")


def error(request):
    raise RuntimeError("this view always fails")


def set_cookies(request):
    """Two cookies in one response: each must arrive as its own Set-Cookie header."""
    response = HttpResponse("cookies set")
    response.set_cookie("flavour", "chocolate")
    response.set_cookie("colour", "blue", httponly=True)
    return response


def whereis(request):
    """reverse() of a named URL: includes the script prefix (root_path)."""
    from django.urls import reverse

    return HttpResponse(reverse("whereis"))


def big(request):
    """A plain (not streaming) response of `size` bytes: over 512 KB it leaves the worker in several messages."""
    size = int(request.GET.get("size", "1200000"))
    return HttpResponse(bytes(i % 249 for i in range(size)), content_type="application/octet-stream")


def bridge_page(request):
    """A page loading the WebSocketBridge (?module=1: as an ES module), for the browser tests."""
    from django.shortcuts import render

    return render(request, "bridge.html", {"module": request.GET.get("module") == "1"})
