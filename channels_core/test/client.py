"""`Client` and `WSClient`: play the interface server in a test, running consumers in the test's thread.

    client = WSClient()
    client.send_and_consume("websocket.connect", path="/chat/")   # asserts the socket was accepted
    client.send_and_consume("websocket.receive", text={"say": "hi"}, path="/chat/")
    assert client.receive() == {"said": "hi"}

Messages go through the channel layer of the alias (an in-memory one
inside a `ChannelTestCase`), consumers are found with its router and run
as a worker runs them: their sends are buffered and flushed when they
return (`channels_core.consumer_sends`), between the `consumer_started` /
`consumer_finished` signals (database connections are left open, as
Django's own test client does).
"""

from __future__ import annotations

import copy
import json
import secrets
from http.cookies import SimpleCookie
from importlib import import_module
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import close_old_connections

from .. import DEFAULT_CHANNEL_LAYER
from ..asgi import channel_layers
from ..channel import Group
from ..consumer_sends import pending_message_store
from ..exceptions import ChannelSocketException
from ..message import Message
from ..signals import consumer_finished, consumer_started
from .on_commit import run_pending


class Client:
    """A client with its own reply channel: send messages, run their consumers, read the replies."""

    def __init__(self, alias: str = DEFAULT_CHANNEL_LAYER) -> None:
        self.alias = alias
        self.reply_channel = f"test.reply.{secrets.token_urlsafe(9)}".replace("-", "_")

    @property
    def channel_layer(self) -> Any:
        return channel_layers[self.alias]

    def get_next_message(self, channel: str) -> Message | None:
        """The next message waiting on `channel`, or None."""
        run_pending()  # what a save's on-commit callbacks send is there before the test reads
        received, content = self.channel_layer.receive([channel], block=False)
        if received is None:
            return None
        return Message(content, received, self.channel_layer)

    def get_consumer_by_channel(self, channel: str) -> Any:
        """The consumer the router picks for a bare message on `channel` (None if no route matches)."""
        match = self.channel_layer.router.match(Message({"text": ""}, channel, self.channel_layer))
        return match[0] if match else None

    def send(self, to: str, content: dict | None = None) -> None:
        """Send `content` (a copy, with this client's `reply_channel` added) to channel `to`."""
        content = copy.deepcopy(content or {})
        content.setdefault("reply_channel", self.reply_channel)
        self.channel_layer.send(to, content)

    def consume(self, channel: str, fail_on_none: bool = True) -> Any:
        """Take the next message on `channel` and run its consumer; returns what the consumer returned.

        A `ChannelSocketException` the consumer raises is run (`exc.run(message)`), as a worker does.
        """
        message = self.get_next_message(channel)
        if message is None:
            if fail_on_none:
                raise AssertionError(f"No message to consume on {channel!r}")
            return None
        match = self.channel_layer.router.match(message)
        if match is None:
            if fail_on_none:
                raise AssertionError(f"No route matches the message on {channel!r}: {message.content!r}")
            return None
        consumer, kwargs = match
        pending_message_store.start()
        try:
            consumer_started.send(sender=self.__class__, environ={})
            return consumer(message, **kwargs)
        except ChannelSocketException as exc:
            exc.run(message)
            return None
        finally:
            pending_message_store.flush()
            # Like Django's test client: keep the test's database connection (and transaction) open.
            consumer_finished.disconnect(close_old_connections, dispatch_uid="channels_core.close_old_connections")
            try:
                consumer_finished.send(sender=self.__class__)
            finally:
                consumer_finished.connect(close_old_connections, dispatch_uid="channels_core.close_old_connections")

    def send_and_consume(self, channel: str, content: dict | None = None, fail_on_none: bool = True) -> Any:
        self.send(channel, content)
        return self.consume(channel, fail_on_none=fail_on_none)

    def receive(self) -> dict | None:
        """The next message sent to this client's reply channel (its content), or None."""
        message = self.get_next_message(self.reply_channel)
        return message.content if message is not None else None

    def join_group(self, group_name: str) -> None:
        Group(group_name, alias=self.alias).add(self.reply_channel)


class WSClient(Client):
    """A WebSocket client: headers, cookies, a session, login, `path` and JSON `text` on each message.

    With `ordered=True` every message gets the next `order` (0 for the
    connect, as the interface server numbers them), for consumers that use
    `enforce_ordering`.
    """

    def __init__(self, alias: str = DEFAULT_CHANNEL_LAYER, ordered: bool = False) -> None:
        super().__init__(alias)
        self._ordered = ordered
        self.order = 0
        self._session: Any = None
        self._headers: dict[str, str] = {}
        self._cookies: dict[str, str] = {}
        self._session_cookie = True

    def set_cookie(self, key: str, value: str) -> None:
        self._cookies[key] = value

    def set_header(self, key: str, value: str) -> None:
        self._headers[key.lower()] = value

    def get_cookies(self) -> dict[str, str]:
        """The cookies sent: those set, plus the session cookie until the first message went out."""
        cookies = dict(self._cookies)
        if self._session_cookie and apps.is_installed("django.contrib.sessions"):
            cookies[settings.SESSION_COOKIE_NAME] = self.session.session_key
        return cookies

    @property
    def headers(self) -> list[list[bytes]]:
        headers = dict(self._headers)
        cookies = self.get_cookies()
        if cookies and "cookie" not in headers:
            jar = SimpleCookie()
            for key, value in cookies.items():
                jar[key] = value
            headers["cookie"] = "; ".join(morsel.OutputString() for morsel in jar.values())
        return [[name.encode("latin-1"), value.encode("latin-1")] for name, value in headers.items()]

    @property
    def session(self) -> Any:
        """This client's HTTP session (created and saved on first use)."""
        if not apps.is_installed("django.contrib.sessions"):
            raise OSError("Add django.contrib.sessions to INSTALLED_APPS to use WSClient.session")
        if self._session is None:
            self._session = import_module(settings.SESSION_ENGINE).SessionStore()
            self._session.save()
        return self._session

    def send(self, to: str, content: dict | None = None, text: Any = None, path: str = "/") -> None:  # type: ignore[override]
        """Send to `to`; `text` that is not a str is sent as JSON.

        A query string in `path` goes in `query_string` on `websocket.connect`
        only (the interface server sends it on the connect alone) and is dropped
        on other channels, as Channels 1.x did.
        """
        if to != "websocket.connect":
            path = path.split("?", 1)[0]
        self.channel_layer.send(to, self._get_content(content, text, path))
        self._session_cookie = False

    def _get_content(self, content: dict | None = None, text: Any = None, path: str = "/") -> dict:
        content = copy.deepcopy(content or {})
        content.setdefault("reply_channel", self.reply_channel)
        if "?" in path:
            path, query_string = path.split("?", 1)
            content.setdefault("query_string", query_string)
        content.setdefault("path", path)
        content.setdefault("headers", self.headers)
        if self._ordered:
            if "order" in content:
                raise ValueError('Do not set "order" yourself on a WSClient(ordered=True)')
            content["order"] = self.order
            self.order += 1
        text = text if text is not None else content.get("text")
        if text is not None:
            content["text"] = text if isinstance(text, str) else json.dumps(text)
        return content

    def send_and_consume(  # type: ignore[override]
        self,
        channel: str,
        content: dict | None = None,
        text: Any = None,
        path: str = "/",
        fail_on_none: bool = True,
        check_accept: bool = True,
    ) -> Any:
        self.send(channel, content, text, path)
        return self.consume(channel, fail_on_none=fail_on_none, check_accept=check_accept)

    def consume(self, channel: str, fail_on_none: bool = True, check_accept: bool = True) -> Any:  # type: ignore[override]
        """Run the consumer; after a `websocket.connect`, assert it answered `{"accept": True}`."""
        result = super().consume(channel, fail_on_none=fail_on_none)
        if channel == "websocket.connect" and check_accept:
            received = self.receive(json=False)
            if received != {"accept": True}:
                raise AssertionError(f"Connection rejected: {received!r} != {{'accept': True}}")
        return result

    def receive(self, json: bool = True) -> Any:  # type: ignore[override]
        """The next reply's `text` (JSON-decoded with `json`); the whole reply if it has no `text`; None if none."""
        content = super().receive()
        if not content:
            return None
        if "text" not in content:
            return content
        if json and isinstance(content["text"], str):
            return _json_loads(content["text"])
        return content["text"]

    def login(self, **credentials: Any) -> bool:
        """Authenticate with `credentials` and log the user into this client's session; False if refused."""
        from django.contrib.auth import authenticate

        user = authenticate(**credentials)
        if user is None or not user.is_active or not apps.is_installed("django.contrib.sessions"):
            return False
        self._login(user)
        return True

    def force_login(self, user: Any, backend: str | None = None) -> None:
        user.backend = backend or settings.AUTHENTICATION_BACKENDS[0]
        self._login(user)

    def _login(self, user: Any) -> None:
        from django.contrib.auth import login

        request = type("FakeRequest", (), {"session": self.session, "META": {}})()
        login(request, user)
        self.session.save()


def _json_loads(text: str) -> Any:
    return json.loads(text)


HttpClient = WSClient
"""The Channels 1.x name of `WSClient`."""
