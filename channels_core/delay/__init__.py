"""The delay server: `INSTALLED_APPS += ["channels_core.delay"]`, `migrate`, then `manage.py rundelay`.

Send `{"channel": name, "delay": milliseconds, "content": {...}}` to the
`asgi.delay` channel and `content` arrives on `name` once the delay has passed
(the ASGI 1.0 delay protocol, as in Channels 1.x's `channels.delay`).
"""
