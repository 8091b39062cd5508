"""`message.user` for consumers, from the HTTP session or the channel session (Channels 1.x API).

    @channel_session_user_from_http      # websocket.connect: log the socket in as the browser's user
    def ws_connect(message):
        message.reply_channel.send({"accept": True, "text": message.user.username})

    @channel_session_user                # later messages: the same user, from the channel session
    def ws_receive(message):
        ...

`message.user` is lazy, like Django's `request.user`: the session (and the
user row) are read only when the consumer looks at it. With no session or no
logged-in user it is an `AnonymousUser`.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib import auth
from django.utils.functional import SimpleLazyObject

from .sessions import channel_and_http_session, channel_session, http_session, http_session_key
from .utils import find_message

_AUTH_KEYS = (auth.BACKEND_SESSION_KEY, auth.SESSION_KEY, auth.HASH_SESSION_KEY)


class _SessionRequest:
    """What `django.contrib.auth.get_user` needs of a request: a `session`."""

    __slots__ = ("session",)

    def __init__(self, session: Any) -> None:
        self.session = session


def _user_from_session(session: Any) -> Any:
    if session is None:
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser()
    return auth.get_user(_SessionRequest(session))


def _lazy_user(get_session):
    return SimpleLazyObject(lambda: _user_from_session(get_session()))


def transfer_user(from_session: Any, to_session: Any) -> None:
    """Copy the logged-in user (backend, user id, auth hash) from one session to another.

    Nothing happens if `from_session` has no logged-in user; keys that
    already hold the same value are not rewritten (so nothing needs saving).
    """
    if all(key in from_session for key in _AUTH_KEYS):
        for key in _AUTH_KEYS:
            if to_session.get(key) != from_session[key]:
                to_session[key] = from_session[key]


def _with_user(func, session_decorator, name: str, session_attribute: str):
    """`func` under `session_decorator`, with `message.user` read lazily from `message.<session_attribute>`."""

    @session_decorator
    @functools.wraps(func)
    def inner(*args, **kwargs):
        message = find_message(args, name)
        message.user = _lazy_user(lambda: getattr(message, session_attribute))
        return func(*args, **kwargs)

    return inner


def channel_session_user(func):
    """`message.user` from the channel session (implies `channel_session`)."""
    return _with_user(func, channel_session, "channel_session_user", "channel_session")


def http_session_user(func):
    """`message.user` from the HTTP session (implies `http_session`); AnonymousUser without one."""
    return _with_user(func, http_session, "http_session_user", "http_session")


def channel_session_user_from_http(func):
    """For `websocket.connect`: the HTTP session's user goes into the channel session and `message.user`.

    Later consumers of the same socket use `channel_session_user`.
    """

    @http_session_user
    @channel_session
    @functools.wraps(func)
    def inner(*args, **kwargs):
        message = find_message(args, "channel_session_user_from_http")
        if message.http_session is not None:
            transfer_user(message.http_session, message.channel_session)
        return func(*args, **kwargs)

    return inner


def channel_and_http_session_user_from_http(func):
    """`channel_and_http_session` plus the user, kept in the channel session; `message.user` from there.

    On a message that carries the session cookie (connect) the user is
    transferred at once. On later messages the HTTP session is rehydrated
    from the channel session and the user re-transferred only when the
    consumer reads `message.user` (so a login made over HTTP after connect is
    seen, and a consumer that ignores the user costs no HTTP session read).
    Unlike Channels 1.x, `message.user` is right on those later messages too
    (1.x read it from the HTTP session before rehydrating it: AnonymousUser),
    and an unchanged user is not rewritten, so nothing is saved again.
    """

    @channel_and_http_session
    @functools.wraps(func)
    def inner(*args, **kwargs):
        message = find_message(args, "channel_and_http_session_user_from_http")
        if message.http_session is not None and http_session_key(message.content):
            transfer_user(message.http_session, message.channel_session)
            message.user = _lazy_user(lambda: message.channel_session)
        else:

            def resolve():
                if message.http_session is not None:
                    transfer_user(message.http_session, message.channel_session)
                return _user_from_session(message.channel_session)

            message.user = SimpleLazyObject(resolve)
        return func(*args, **kwargs)

    return inner
