"""Static files for development: `STATIC_URL` paths served by django.contrib.staticfiles, the rest by views.

`runworker` uses `StaticFilesConsumer` for `http.request` when DEBUG is on and
django.contrib.staticfiles is installed, as `runserver` does. Files are found
with the staticfiles finders (app `static/` directories, STATICFILES_DIRS),
with no middleware in the way; other paths go through the normal handler.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from django.conf import settings
from django.contrib.staticfiles import utils
from django.contrib.staticfiles.views import serve
from django.core.handlers.exception import response_for_exception
from django.http import Http404

from .handler import AsgiHandler, ViewConsumer


class StaticFilesHandler(AsgiHandler):
    """An `AsgiHandler` that answers `STATIC_URL` paths from the staticfiles finders.

    It only does so in DEBUG (or when `insecure` is set, like `runserver
    --insecure`); otherwise it is the plain view handler.
    """

    handles_files = True
    insecure = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base_url = urlparse(self.get_base_url())

    def get_base_url(self) -> str:
        utils.check_settings()
        return settings.STATIC_URL

    def _should_handle(self, path: str) -> bool:
        """Under STATIC_URL's path, and STATIC_URL is not on another host."""
        return (settings.DEBUG or self.insecure) and path.startswith(self.base_url.path) and not self.base_url.netloc

    def file_path(self, url: str) -> str:
        """The file's path relative to the static roots, for a URL under STATIC_URL."""
        return url2pathname(url.removeprefix(self.base_url.path))

    def serve(self, request: Any) -> Any:
        return serve(request, self.file_path(request.path_info), insecure=True)

    def get_response(self, request: Any) -> Any:
        if not self._should_handle(request.path_info):
            return super().get_response(request)
        try:
            response = self.serve(request)
        except Http404 as exc:
            # A 404 page (the technical one in DEBUG), without running the middleware.
            response = response_for_exception(request, exc)
        response._resource_closers.append(request.close)
        return response


class StaticFilesConsumer(ViewConsumer):
    """`ViewConsumer` that also serves static files in DEBUG."""

    handler_class = StaticFilesHandler
