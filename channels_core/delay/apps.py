"""The delay server's Django app."""

from __future__ import annotations

from django.apps import AppConfig


class DelayConfig(AppConfig):
    name = "channels_core.delay"
    # Not "delay": a project may well have an app of that name.
    label = "channels_core_delay"
    verbose_name = "Channels Delay"
    default_auto_field = "django.db.models.BigAutoField"
