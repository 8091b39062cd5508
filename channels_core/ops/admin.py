"""The page in the admin: one view where the model's changelist would be, for active staff only.

`admin.site.admin_view` sends anyone else to the admin login (that is
`AdminSite.has_permission`: active and staff). There is nothing to add,
change or delete, so those views do not exist.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from . import conf
from .access import is_staff
from .models import Operations


@admin.register(Operations)
class OperationsAdmin(admin.ModelAdmin):
    """Replaces the changelist with the operations page; no other admin view."""

    template_name = "channels_core/ops/status.html"

    def get_urls(self) -> list:
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        # The changelist's name: the admin index and the breadcrumbs link to it without knowing better.
        return [path("", self.admin_site.admin_view(self.page_view), name=name)]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_staff(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_staff(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def page_view(self, request: HttpRequest) -> HttpResponse:
        """The page: the figures arrive over the WebSocket, the HTML only says where and how often to ask."""
        context = {
            **self.admin_site.each_context(request),
            "title": "Channels operations",
            "opts": self.opts,
            "websocket_path": conf.websocket_path(),
            "refresh_ms": int(conf.refresh_seconds() * 1000),
        }
        return TemplateResponse(request, self.template_name, context)
