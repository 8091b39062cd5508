"""Sessions for consumers: per-connection `channel_session` and the browser's `http_session` (Channels 1.x API).

    @channel_session
    def ws_receive(message):
        message.channel_session["seen"] = message.channel_session.get("seen", 0) + 1

What is kept from Channels 1.x: the names, the session key
(`"chn" + sha1(reply_channel)[:29]`), `CHANNEL_SESSION_ENGINE` (defaulting to
`SESSION_ENGINE`, signed cookies refused), the `session_key` GET parameter and
the session cookie for `http_session`, and saving after the consumer.

What is different (Channels 1.x complaints: sessions piling up, one session
write per socket whether used or not, several round trips per message):

* Nothing is read or written unless the consumer uses the session: the store
  loads on first access and is saved only if modified. A consumer that never
  touches `message.channel_session` costs no session query at all.
* A channel session is created on the first save, not up front (1.x ran an
  `exists()` query, a `save(must_create=True)` and a load for every message).
  On `websocket.connect` the session cannot exist yet, so it is not even read.
* After the consumer of `websocket.disconnect` (or `http.disconnect`) the
  channel session is deleted, so sessions do not pile up until `clearsessions`.
* A session emptied by the consumer is deleted instead of being saved empty.
* `http_session` reads the Cookie header and query string itself (no request
  object) and never creates a session: a modified session is saved only if it
  exists (a stale cookie does not produce orphan sessions).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from importlib import import_module
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.core.exceptions import ImproperlyConfigured
from django.http.cookie import parse_cookie

from .exceptions import ConsumeLater
from .utils import find_message

logger = logging.getLogger("channels_core")

# After the consumer of a message on one of these channels, the connection is
# over: its channel session is deleted.
DISCONNECT_CHANNELS = frozenset({"websocket.disconnect", "http.disconnect"})

_store_classes: dict[type, type] = {}


def channel_session_engine_path() -> str:
    return getattr(settings, "CHANNEL_SESSION_ENGINE", None) or settings.SESSION_ENGINE


def _channel_store_class() -> type:
    """The configured engine's SessionStore with `ChannelSessionMixin` mixed in (cached per engine)."""
    path = channel_session_engine_path()
    try:
        engine = import_module(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"CHANNEL_SESSION_ENGINE {path!r} cannot be imported: {exc}") from None
    base = engine.SessionStore
    cls = _store_classes.get(base)
    if cls is None:
        from django.contrib.sessions.backends.signed_cookies import SessionStore as SignedCookieStore

        if issubclass(base, SignedCookieStore):
            raise ImproperlyConfigured(
                f"Channel sessions cannot use signed-cookie sessions ({path}): a WebSocket has no cookie to "
                "write them to. Set CHANNEL_SESSION_ENGINE to a server-side engine, e.g. "
                "'django.contrib.sessions.backends.cache' or 'django.contrib.sessions.backends.db'."
            )
        # Same (qual)name as the engine's class: the signing salt of session data derives from it, so
        # the engine's own store (admin, shell, tools) can read channel sessions and vice versa.
        cls = type(
            base.__name__, (ChannelSessionMixin, base), {"__module__": __name__, "__qualname__": base.__qualname__}
        )
        _store_classes[base] = cls
    return cls


class ChannelSessionMixin:
    """A session whose key is fixed (derived from the reply channel) and which remembers whether it exists.

    Django's stores forget a key that is not in storage (and the file store
    makes a new random one for an expired session); a channel session keeps
    its key, so it is created on its first save under that key.
    `_channel_exists` is None while unknown, then True/False.
    """

    def __init__(self, session_key: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(session_key, *args, **kwargs)
        self._channel_key = session_key
        self._channel_exists: bool | None = None

    def load(self) -> dict:
        self._channel_exists = True  # unless the store forgets the key, or create() makes it unknown
        data = super().load()
        if self._session_key != self._channel_key:
            self._session_key = self._channel_key
            self._channel_exists = False
        return data

    def create(self) -> None:
        # Never a random key. Stores call this for a corrupt or expired session (the file store, from
        # load()): start empty under the channel's own key and let the next save write it.
        self._session_key = self._channel_key
        self._session_cache = {}
        self._channel_exists = None
        self.modified = True

    def cycle_key(self) -> None:
        # The key is derived from the reply channel; there is nothing to cycle. Keep the data, save it.
        self._get_session()
        self.modified = True

    def save(self, must_create: bool = False) -> None:
        if self._session_key is None:  # flush() drops the key
            self._session_key = self._channel_key
        if must_create or not self._channel_exists:
            try:
                super().save(must_create=True)
            except CreateError:
                if must_create:
                    raise
                # It exists after all (made meanwhile, or expired but not yet cleared): overwrite it.
                super().save(must_create=False)
        else:
            super().save(must_create=False)
        self._channel_exists = True

    def delete(self, session_key: str | None = None) -> None:
        super().delete(session_key or self._channel_key)
        if session_key in (None, self._channel_key):
            self._channel_exists = False


def session_key_for_reply_channel(reply_channel: str) -> str:
    return "chn" + hashlib.sha1(reply_channel.encode("utf8")).hexdigest()[:29]


def session_for_reply_channel(reply_channel: str):
    """The (unloaded) channel session of `reply_channel`: nothing is read until it is used."""
    return _channel_store_class()(session_key_for_reply_channel(reply_channel))


def _persist_channel_session(session: Any) -> None:
    """Save a modified session; delete it instead if the consumer emptied it."""
    if not session.modified:
        return
    try:
        if not session._get_session():
            if session._channel_exists is not False:
                session.delete()
        else:
            session.save()
    except UpdateError:
        # It was deleted while this consumer ran (the socket disconnected): nothing to keep.
        logger.info("Channel session %s vanished while a consumer used it; changes dropped", session.session_key)
    session.modified = False


def _end_channel_session(session: Any, message: Any, failed: bool) -> None:
    try:
        if message.channel.name in DISCONNECT_CHANNELS:
            if session._channel_exists is not False:
                session.delete()
        else:
            _persist_channel_session(session)
    except Exception:
        if not failed:
            raise
        # The consumer's own exception matters more; don't mask it.
        logger.exception("Could not save the channel session %s after a failed consumer", session.session_key)


def channel_session(func):
    """Give the consumer `message.channel_session`, a session that lives as long as the connection.

    Loaded on first use, saved after the consumer if modified (even if the
    consumer raised), deleted after a disconnect message's consumer. Works on
    functions and methods (the message is the first or second argument).
    """

    @functools.wraps(func)
    def inner(*args, **kwargs):
        message = find_message(args, "channel_session")
        if hasattr(message, "channel_session"):
            # An outer decorator owns the session and persists it when everything has run.
            return func(*args, **kwargs)
        if not message.reply_channel:
            raise ValueError(
                "No reply_channel sent to consumer; @channel_session can only be used on messages containing it."
            )
        session = session_for_reply_channel(message.reply_channel.name)
        if message.channel.name == "websocket.connect" and "__retries__" not in message.content:
            # The first message of a connection: its session cannot exist yet, don't read it.
            session._session_cache = {}
            session._channel_exists = False
        message.channel_session = session
        try:
            result = func(*args, **kwargs)
        except ConsumeLater:
            if getattr(message, "__doomed__", False):
                _end_channel_session(session, message, failed=True)
            else:
                # The message comes back: keep the session for that attempt, even on disconnect.
                try:
                    _persist_channel_session(session)
                except Exception:
                    logger.exception("Could not save the channel session %s", session.session_key)
            raise
        except BaseException:
            _end_channel_session(session, message, failed=True)
            raise
        _end_channel_session(session, message, failed=False)
        return result

    return inner


# -- HTTP sessions ---------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else ""


def http_session_key(content: dict) -> str | None:
    """The HTTP session key of a connect/request message: the `session_key` GET parameter, else the cookie."""
    query = _text(content.get("query_string"))
    if "session_key" in query:
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name == "session_key" and value:
                return value
    cookies = []
    headers = content.get("headers") or ()
    if isinstance(headers, dict):  # Channels 1.x's test client sent {name: value}
        headers = headers.items()
    for header in headers:
        try:
            name, value = header[0], header[1]
        except (IndexError, KeyError, TypeError):
            continue
        if _text(name).lower() == "cookie":
            cookies.append(_text(value))
    if cookies:
        return parse_cookie("; ".join(cookies)).get(settings.SESSION_COOKIE_NAME) or None
    return None


def http_session_for_key(session_key: str | None):
    """An (unloaded) SessionStore for an HTTP session key, or None if there is no valid key."""
    if not session_key:
        return None
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=session_key)
    return session if session.session_key is not None else None


def _save_http_session(session: Any) -> None:
    # Only if the consumer changed it, and only if it exists: a stale cookie never creates a session.
    if session is None or not session.modified or session.session_key is None:
        return
    try:
        session.save()
    except UpdateError:
        logger.info("HTTP session vanished while a consumer used it; changes dropped")


def http_session(func):
    """Give the consumer `message.http_session`: the browser's session (cookie or `session_key` GET parameter).

    None if the message carries no session key. Meant for `websocket.connect`
    and `http.request`; it never creates a session (log in through a view).
    Nothing is read unless the consumer uses it.
    """

    @functools.wraps(func)
    def inner(*args, **kwargs):
        message = find_message(args, "http_session")
        if hasattr(message, "http_session"):
            return func(*args, **kwargs)
        session = http_session_for_key(http_session_key(message.content))
        message.http_session = session
        result = func(*args, **kwargs)
        _save_http_session(session)
        return result

    return inner


def channel_and_http_session(func):
    """Both sessions: on connect the HTTP session key is stored in the channel session; later messages reuse it."""

    @http_session
    @channel_session
    @functools.wraps(func)
    def inner(*args, **kwargs):
        message = find_message(args, "channel_and_http_session")
        cookie_name = settings.SESSION_COOKIE_NAME
        rehydrated = None
        if message.http_session is not None:
            if message.channel_session.get(cookie_name) != message.http_session.session_key:
                message.channel_session[cookie_name] = message.http_session.session_key
        else:
            stored = message.channel_session.get(cookie_name)
            if stored:
                message.http_session = rehydrated = http_session_for_key(stored)
        result = func(*args, **kwargs)
        # The outer http_session saves only the session it found itself.
        _save_http_session(rehydrated)
        return result

    return inner


# Channels 1.x exported enforce_ordering from channels.sessions; it lives in .ordering now.
from .ordering import enforce_ordering  # noqa: E402, F401
