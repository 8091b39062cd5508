"""A read-only operations page in the Django admin, refreshed live over a WebSocket through the stack itself.

Three steps to enable it:

1. `INSTALLED_APPS += ["channels_core.ops"]` (with `django.contrib.admin`).
2. In the channel routing: `include("channels_core.ops.routing.channel_routing")`.
3. Open the admin as a staff user: "Channels > Operations".

The page shows what `manage.py channels_status` shows (`channels_core.status.collect_status`):
queues, groups, live interface servers and workers, drop counters. The figures
come from a worker, asked over the page's WebSocket every
`CHANNELS_OPS_REFRESH_SECONDS` (default 2), so the page also measures the
round trip through the interface server and a worker. Nothing on it acts on
the stack.
"""
