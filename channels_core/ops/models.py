"""The admin lists models, not pages: an unmanaged model with no table gives the page its place on the admin index.

No table is created (`managed = False`), no query ever touches it (the admin
class replaces every view with the page), and no permission rows are made
(`default_permissions = ()`): who may see it is decided by `is_staff` in
`admin.py`. The app has no migrations, so `makemigrations` leaves it alone.
"""

from __future__ import annotations

from django.db import models


class Operations(models.Model):
    class Meta:
        managed = False
        default_permissions = ()
        verbose_name = "operations"
        verbose_name_plural = "operations"
