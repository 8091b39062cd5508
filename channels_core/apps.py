"""The Django app: `INSTALLED_APPS += ["channels_core"]`."""

from __future__ import annotations

from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels_core"
    label = "channels_core"
    verbose_name = "Channels"

    def ready(self) -> None:
        from routing import Router

        from . import checks, signals  # noqa: F401  (registers the checks and signal handlers)
        from .routing_defaults import default_routes

        Router.default_routes = default_routes
