"""Origin validation of websocket.connect (channels_core.security.websockets)."""

from __future__ import annotations

import pytest

from channels_core.exceptions import DenyConnection
from channels_core.layers import InMemoryChannelLayer
from channels_core.message import Message
from channels_core.security import AllowedHostsOnlyOriginValidator, BaseOriginValidator, allowed_hosts_only
from channels_core.test import make_message

_MISSING = object()


def connect_message(origin=_MISSING, headers=None):
    headers = list(headers or [[b"host", b"example.com"]])
    if origin is not _MISSING:
        headers.append([b"origin", origin])
    return make_message("websocket.connect", headers=headers)


def run(message, consumer_calls):
    @allowed_hosts_only
    def consumer(message, **kwargs):
        consumer_calls.append(kwargs)
        return "ran"

    return consumer(message, room="lobby")


# origin, ALLOWED_HOSTS, DEBUG, allowed?
MATRIX = [
    (b"http://example.com", ["example.com"], False, True),
    (b"https://example.com:8443", ["example.com"], False, True),
    (b"http://EXAMPLE.com", ["example.com"], False, True),
    (b"http://evil.com", ["example.com"], False, False),
    (b"http://example.com.evil.com", ["example.com"], False, False),
    (b"http://sub.example.com", ["example.com"], False, False),
    (b"http://sub.example.com", [".example.com"], False, True),
    (b"http://example.com", [".example.com"], False, True),
    (b"http://anything.org", ["*"], False, True),
    (b"http://[::1]:8000", ["[::1]"], False, True),
    (b"http://[::1]:8000", ["127.0.0.1"], False, False),
    (b"null", ["*"], False, False),
    (b"example.com", ["example.com"], False, False),  # no scheme: not an origin
    (b"http://example.com:notaport", ["example.com"], False, False),
    (b"", ["*"], False, False),
    (b"http://example.com" + "é".encode(), ["*"], False, False),  # non-ASCII
    (b"http://localhost:8000", [], True, True),
    (b"http://127.0.0.1:8000", [], True, True),
    (b"http://[::1]:8000", [], True, True),
    (b"http://evil.com", [], True, False),
    (b"http://localhost:8000", [], False, False),  # empty ALLOWED_HOSTS without DEBUG: nothing
    (b"http://localhost", ["example.com"], True, False),  # DEBUG does not widen a configured list
]


@pytest.mark.parametrize("origin,allowed_hosts,debug,allowed", MATRIX)
def test_origin_matrix(settings, origin, allowed_hosts, debug, allowed):
    settings.ALLOWED_HOSTS = allowed_hosts
    settings.DEBUG = debug
    calls = []
    message = connect_message(origin)
    if allowed:
        assert run(message, calls) == "ran"
        assert calls == [{"room": "lobby"}]
    else:
        with pytest.raises(DenyConnection):
            run(message, calls)
        assert calls == []


def test_missing_origin_header_is_denied(settings):
    settings.ALLOWED_HOSTS = ["*"]
    calls = []
    with pytest.raises(DenyConnection):
        run(connect_message(), calls)
    with pytest.raises(DenyConnection):
        run(
            Message({"reply_channel": "websocket.send!x", "path": "/"}, "websocket.connect", InMemoryChannelLayer()),
            calls,
        )
    assert calls == []


def test_header_name_case_and_str_values_are_accepted(settings):
    settings.ALLOWED_HOSTS = ["example.com"]
    calls = []
    message = connect_message(headers=[["Origin", "http://example.com"]])
    assert run(message, calls) == "ran"


def test_raw_content_dict_works_too(settings):
    settings.ALLOWED_HOSTS = ["example.com"]
    validator = AllowedHostsOnlyOriginValidator(lambda m: "ran")
    assert validator.get_origin({"headers": [[b"origin", b"http://example.com"]]}) == "http://example.com"


def test_decorator_keeps_the_consumer_name():
    @allowed_hosts_only
    def ws_connect(message):
        """Doc."""

    assert ws_connect.__name__ == "ws_connect"
    assert ws_connect.__doc__ == "Doc."
    assert allowed_hosts_only is AllowedHostsOnlyOriginValidator


def test_base_validator_subclass_and_methods(settings):
    class OnlyHttps(BaseOriginValidator):
        def validate_origin(self, message, origin):
            return origin.startswith("https://")

    class Consumer:
        def __init__(self):
            self.calls = []

        @OnlyHttps
        def connect(self, message):
            self.calls.append(message)
            return "ok"

    consumer = Consumer()
    assert consumer.connect(connect_message(b"https://a.b")) == "ok"
    with pytest.raises(DenyConnection):
        consumer.connect(connect_message(b"http://a.b"))
    assert len(consumer.calls) == 1


def test_base_validator_must_be_subclassed():
    validator = BaseOriginValidator(lambda m: None)
    with pytest.raises(NotImplementedError):
        validator(connect_message(b"http://a.b"))
