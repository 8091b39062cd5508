"""The operations page's Django app: a label of its own so that it is opt-in and cannot clash with "ops"."""

from __future__ import annotations

from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "channels_core.ops"
    label = "channels_ops"
    verbose_name = "Channels"
    # The page's model has no table; this only keeps models.W042 quiet in projects without DEFAULT_AUTO_FIELD.
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the routing check)
