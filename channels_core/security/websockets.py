"""Origin checks for `websocket.connect` consumers (Channels 1.x `channels.security.websockets`).

    @allowed_hosts_only
    def ws_connect(message):
        message.reply_channel.send({"accept": True})

A connect without an Origin header, with a non-ASCII or unparsable one, or
with one whose host is not in `ALLOWED_HOSTS`, raises `DenyConnection` (the
worker rejects the handshake with 403) before the consumer runs.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import validate_host

from ..exceptions import DenyConnection

# What Django itself accepts as Host with DEBUG on and ALLOWED_HOSTS empty.
DEBUG_ALLOWED_HOSTS = [".localhost", "127.0.0.1", "[::1]"]


class BaseOriginValidator:
    """Class-based decorator: parses the Origin header and calls `validate_origin(message, origin)`.

    Subclasses implement `validate_origin`, returning True to let the
    consumer run; False (or a missing/non-ASCII Origin) raises DenyConnection.
    Works on functions and on methods.
    """

    def __init__(self, func) -> None:
        functools.update_wrapper(self, func)
        self.func = func

    def __call__(self, message, *args, **kwargs):
        origin = self.get_origin(message)
        if not self.validate_origin(message, origin):
            raise DenyConnection()
        return self.func(message, *args, **kwargs)

    def __get__(self, instance, owner):
        if instance is None:
            return self
        return _BoundValidator(self, instance)

    def get_header(self, message, name: bytes) -> Any:
        """The value of header `name` (lowercase bytes) in the message; KeyError if absent."""
        content = message.content if hasattr(message, "content") else message
        for header in content.get("headers") or ():
            try:
                key = header[0]
            except (IndexError, KeyError, TypeError):
                continue
            if isinstance(key, str):
                key = key.encode("latin-1")
            if key.lower() == name and len(header) > 1:
                return header[1]
        raise KeyError(f"No header named {name!r}")

    def get_origin(self, message) -> str:
        """The Origin header as text; DenyConnection if it is missing, empty or not ASCII."""
        try:
            value = self.get_header(message, b"origin")
        except KeyError:
            raise DenyConnection() from None
        try:
            origin = value.decode("ascii") if isinstance(value, bytes) else str(value.encode("ascii"), "ascii")
        except (UnicodeError, AttributeError):
            raise DenyConnection() from None
        if not origin:
            raise DenyConnection()
        return origin

    def validate_origin(self, message, origin: str) -> bool:
        raise NotImplementedError("Subclasses of BaseOriginValidator must implement validate_origin(message, origin)")


class _BoundValidator:
    """A validator used as a method decorator, bound to an instance."""

    def __init__(self, validator: BaseOriginValidator, instance: Any) -> None:
        self.validator = validator
        self.instance = instance
        functools.update_wrapper(self, validator.func)

    def __call__(self, message, *args, **kwargs):
        origin = self.validator.get_origin(message)
        if not self.validator.validate_origin(message, origin):
            raise DenyConnection()
        return self.validator.func(self.instance, message, *args, **kwargs)


def origin_host(origin: str) -> str | None:
    """The host of an Origin as `validate_host` wants it (IPv6 in brackets, no port), or None."""
    try:
        parts = urlsplit(origin)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if not parts.scheme or not hostname:
        return None
    return f"[{hostname}]" if ":" in hostname else hostname


class AllowedHostsOnlyOriginValidator(BaseOriginValidator):
    """Accepts only Origins whose host matches `ALLOWED_HOSTS` (Django's patterns: `.example.com`, `*`)."""

    def validate_origin(self, message, origin: str) -> bool:
        allowed_hosts = settings.ALLOWED_HOSTS
        if settings.DEBUG and not allowed_hosts:
            allowed_hosts = DEBUG_ALLOWED_HOSTS
        host = origin_host(origin)
        return bool(host) and validate_host(host, allowed_hosts)


allowed_hosts_only = AllowedHostsOnlyOriginValidator
