"""Consumers using sessions, auth and the origin check; routed under /sess (tests/stack/test_sessions_auth.py)."""

from channels_core.auth import (
    channel_and_http_session_user_from_http,
    channel_session_user,
    channel_session_user_from_http,
)
from channels_core.security.websockets import allowed_hosts_only
from channels_core.sessions import channel_session
from routing import route

from .models import Note


def _name(user):
    return user.username if user.is_authenticated else "anonymous"


@channel_session_user_from_http
def user_connect(message, **kwargs):
    """Accept and say who the browser's session belongs to; the user is now in the channel session."""
    message.channel_session["count"] = 0
    message.reply_channel.send({"accept": True, "text": f"hello {_name(message.user)}"})


@channel_session_user
def user_receive(message, **kwargs):
    """Reply with the user (from the channel session) and how many frames this socket sent."""
    message.channel_session["count"] += 1
    message.reply_channel.send({"text": f"{_name(message.user)} {message.channel_session['count']} {message['text']}"})


@channel_session_user
def user_disconnect(message, **kwargs):
    """Record who left after how many frames (a Note row); the channel session is deleted afterwards."""
    message.channel_session["count"] += 1  # modified on purpose: deletion must win over saving
    Note.objects.create(text=f"bye {_name(message.user)} {message.channel_session['count'] - 1}")


def plain_connect(message, **kwargs):
    message.reply_channel.send({"accept": True})


@channel_session
def plain_receive(message, **kwargs):
    """Never touches the channel session: no session row should ever be written for it."""
    message.reply_channel.send({"text": f"plain {message['text']}"})


@channel_and_http_session_user_from_http
def both_connect(message, **kwargs):
    message.reply_channel.send({"accept": True, "text": f"both {_name(message.user)}"})


@channel_and_http_session_user_from_http
def both_receive(message, **kwargs):
    """The user, and a value of the browser's HTTP session, rehydrated from the key kept in the channel session."""
    visits = message.http_session.get("visits") if message.http_session is not None else None
    message.reply_channel.send({"text": f"both {_name(message.user)} visits={visits}"})


@channel_and_http_session_user_from_http
def both_disconnect(message, **kwargs):
    Note.objects.create(text=f"both bye {_name(message.user)}")


@allowed_hosts_only
def origin_connect(message, **kwargs):
    message.reply_channel.send({"accept": True, "text": "origin ok"})


routes = [
    route("websocket.connect", user_connect, path=r"^/user/$"),
    route("websocket.receive", user_receive, path=r"^/user/$"),
    route("websocket.disconnect", user_disconnect, path=r"^/user/$"),
    route("websocket.connect", plain_connect, path=r"^/plain/$"),
    route("websocket.receive", plain_receive, path=r"^/plain/$"),
    route("websocket.connect", both_connect, path=r"^/both/$"),
    route("websocket.receive", both_receive, path=r"^/both/$"),
    route("websocket.disconnect", both_disconnect, path=r"^/both/$"),
    route("websocket.connect", origin_connect, path=r"^/origin/$"),
]
