"""Who may see the operations page and its WebSocket: active staff, from a page of an allowed host."""

from __future__ import annotations

from typing import Any

from ..exceptions import DenyConnection
from ..security.websockets import AllowedHostsOnlyOriginValidator


def is_staff(user: Any) -> bool:
    """Whether `user` may see the page: an active staff member (what `AdminSite.has_permission` asks too)."""
    return bool(user is not None and user.is_active and user.is_staff)


class _SessionRequest:
    """What `django.contrib.auth.get_user` reads of a request: its session."""

    __slots__ = ("session",)

    def __init__(self, session: Any) -> None:
        self.session = session


def session_user(session: Any) -> Any:
    """The user logged in to an HTTP session now: AnonymousUser without a session, after a logout
    (the session is gone) or after a password change (the session's auth hash no longer matches)."""
    from django.contrib import auth
    from django.contrib.auth.models import AnonymousUser

    if session is None:
        return AnonymousUser()
    return auth.get_user(_SessionRequest(session))


# The project's Origin check (the one `allowed_hosts_only` applies), used here as a predicate.
_origins = AllowedHostsOnlyOriginValidator(lambda message: None)


def origin_allowed(message: Any) -> bool:
    """Whether a handshake's Origin header names one of `ALLOWED_HOSTS` (a missing Origin does not).

    Browsers always send Origin on a WebSocket handshake; checking it stops a
    page on another site from opening this socket with a staff member's
    cookie (cross-site WebSocket hijacking), where SameSite cookies alone
    are not enough (SESSION_COOKIE_SAMESITE=None, or a sibling subdomain).
    """
    try:
        origin = _origins.get_origin(message)
    except DenyConnection:
        return False
    return _origins.validate_origin(message, origin)
