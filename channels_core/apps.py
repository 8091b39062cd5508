"""The Django app: `INSTALLED_APPS += ["channels_core"]`."""

from __future__ import annotations

import logging

from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels_core"
    label = "channels_core"
    verbose_name = "Channels"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401  (registers the checks and signal handlers)
        from .shadowing import shadowed_packages

        if "routing" in shadowed_packages():
            return  # a project module hides our routing package: check E006 says which, instead of a traceback
        _import_routing_modules()
        from .binding.base import BindingMetaclass

        BindingMetaclass.register_all()


def _import_routing_modules() -> None:
    """Import each layer's ROUTING module now, so bindings it reaches are registered in every process.

    A model saved in a process that never builds a router (the admin under
    gunicorn, a shell) must still tell the bound clients. A routing that
    cannot be imported is left alone here: the system checks report it.
    """
    from importlib import import_module

    from django.conf import settings

    for config in getattr(settings, "CHANNEL_LAYERS", {}).values():
        routing = config.get("ROUTING") if isinstance(config, dict) else None
        if isinstance(routing, str) and "." in routing:
            try:
                import_module(routing.rsplit(".", 1)[0])
            except Exception as exc:
                logging.getLogger("channels_core").debug("Routing %s not imported at startup: %s", routing, exc)
