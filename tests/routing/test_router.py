"""Routing tables: route, route_class, include, Router, as in Channels 1.x (reference 4.5)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from routing import Include, Route, RouteClass, Router, include, route, route_class
from routing.router import RoutingError

from . import sample_routing


class Msg:
    """The part of a Message the routing looks at: `.channel.name` and `.content`."""

    def __init__(self, channel: str, **content) -> None:
        self.channel = SimpleNamespace(name=channel)
        self.content = content


def consumer_a(message, **kwargs):
    pass


def consumer_b(message, **kwargs):
    pass


# -- route -----------------------------------------------------------------------------------


def test_route_matches_channel_and_regex_filter():
    r = route("websocket.connect", consumer_a, path=r"^/chat/$")
    assert r.match(Msg("websocket.connect", path="/chat/")) == (consumer_a, {})
    assert r.match(Msg("websocket.connect", path="/other/")) is None
    assert r.match(Msg("websocket.receive", path="/chat/")) is None


def test_filters_use_re_match_from_the_start_only():
    r = route("http.request", consumer_a, path=r"/api")
    assert r.match(Msg("http.request", path="/api/x")) is not None
    assert r.match(Msg("http.request", path="/v1/api")) is None  # re.match, not re.search


def test_route_without_filters_matches_every_message_on_its_channels():
    r = route(["websocket.connect", "websocket.receive"], consumer_a)
    assert r.match(Msg("websocket.connect")) == (consumer_a, {})
    assert r.match(Msg("websocket.receive", path="/anything")) == (consumer_a, {})
    assert r.channel_names() == {"websocket.connect", "websocket.receive"}


def test_named_groups_become_kwargs():
    r = route("websocket.connect", consumer_a, path=r"^/room/(?P<room>\w+)/(?P<page>\d+)/$")
    assert r.match(Msg("websocket.connect", path="/room/lobby/3/")) == (consumer_a, {"room": "lobby", "page": "3"})


def test_optional_named_group_that_did_not_match_is_passed_as_none():
    # Channels 1.x passed match.groupdict() as it is, None included.
    r = route("websocket.connect", consumer_a, path=r"^/items/(?:(?P<page>\d+)/)?$")
    assert r.match(Msg("websocket.connect", path="/items/")) == (consumer_a, {"page": None})
    assert r.match(Msg("websocket.connect", path="/items/2/")) == (consumer_a, {"page": "2"})


def test_positional_groups_are_an_error():
    with pytest.raises(ValueError, match="positional groups"):
        route("websocket.connect", consumer_a, path=r"^/room/(\w+)/$")
    # Non-capturing groups are fine.
    route("websocket.connect", consumer_a, path=r"^/(?:a|b)/$")


def test_invalid_regex_is_a_clear_error():
    with pytest.raises(RoutingError, match=r"path='\^/\(' is not a valid regex"):
        route("websocket.connect", consumer_a, path=r"^/(")


def test_non_string_filter_is_an_error():
    with pytest.raises(RoutingError, match="must be a regex string"):
        route("websocket.connect", consumer_a, path=3)


def test_missing_key_means_no_match():
    r = route("websocket.connect", consumer_a, path=r"^/")
    assert r.match(Msg("websocket.connect")) is None
    # A key whose value is neither str nor bytes cannot match either.
    assert r.match(Msg("websocket.connect", path=None)) is None


def test_bytes_values_and_bytes_patterns_are_decoded():
    # A bytes pattern must be ASCII; a bytes message value is decoded as UTF-8.
    r = route("http.request", consumer_a, method=b"^GET$", path=r"^/café/(?P<x>\w+)$")
    assert r.match(Msg("http.request", method=b"GET", path="/café/a".encode())) == (consumer_a, {"x": "a"})
    assert r.match(Msg("http.request", method=b"POST", path=b"/caf\xc3\xa9/a")) is None


def test_all_filters_must_match():
    r = route("http.request", consumer_a, path=r"^/form/$", method=r"^POST$")
    assert r.match(Msg("http.request", path="/form/", method="POST")) is not None
    assert r.match(Msg("http.request", path="/form/", method="GET")) is None
    assert r.match(Msg("http.request", path="/x/", method="POST")) is None
    assert r.match(Msg("http.request", path="/form/")) is None


def test_precompiled_pattern_is_accepted():
    r = route("websocket.connect", consumer_a, path=re.compile(r"^/(?P<n>\d+)$"))
    assert r.match(Msg("websocket.connect", path="/12")) == (consumer_a, {"n": "12"})


def test_non_callable_consumer_is_an_error():
    with pytest.raises(RoutingError, match="not callable"):
        route("websocket.connect", 42)


# -- dotted paths ---------------------------------------------------------------------------


def test_consumer_by_dotted_path():
    r = route("websocket.connect", "tests.routing.sample_routing.connect")
    assert r.consumer is sample_routing.connect


@pytest.mark.parametrize(
    "path, message",
    [
        ("tests.routing.no_such_module.consumer", "cannot be imported: No module named 'tests.routing.no_such_module'"),
        ("tests.routing.sample_routing.nope", "module 'tests.routing.sample_routing' has no 'nope'"),
        ("justaname", "is not a dotted path"),
        ("tests.routing.sample_routing.not_callable", "is not callable"),
    ],
)
def test_unimportable_consumer_errors_name_the_path(path, message):
    with pytest.raises(RoutingError) as info:
        route("websocket.connect", path)
    assert message in str(info.value)
    assert path in str(info.value) or "42" in str(info.value)


def test_routing_by_dotted_path_and_errors():
    router = Router("tests.routing.sample_routing.channel_routing")
    assert router.channels == {"websocket.connect", "websocket.receive"}
    with pytest.raises(RoutingError, match="routing 'tests.routing.sample_routing.nothing'"):
        Router("tests.routing.sample_routing.nothing")
    with pytest.raises(RoutingError, match="must be a list of routes, a dict or a dotted path, not int"):
        Router("tests.routing.sample_routing.not_a_routing")
    with pytest.raises(RoutingError, match="is not a route"):
        Router([route("a", consumer_a), "not a route"])


# -- include --------------------------------------------------------------------------------


def test_include_strips_the_prefix_for_inner_routes():
    inner = [route("websocket.connect", consumer_a, path=r"^/room/$")]
    r = include(inner, path=r"^/chat")
    original = Msg("websocket.connect", path="/chat/room/")
    assert r.match(original) == (consumer_a, {})
    # The message the consumer gets is untouched.
    assert original.content["path"] == "/chat/room/"
    assert r.match(Msg("websocket.connect", path="/room/")) is None  # the prefix must match
    assert r.match(Msg("websocket.connect", path="/chat/other/")) is None
    assert r.match(Msg("websocket.connect")) is None  # missing key


def test_include_kwargs_merge_and_inner_wins():
    inner = [route("websocket.connect", consumer_a, path=r"^/(?P<room>\w+)/(?P<lang>\w+)/$")]
    r = include(inner, path=r"^/(?P<lang>[a-z]{2})(?P<version>/v\d+)")
    assert r.match(Msg("websocket.connect", path="/en/v2/lobby/fr/")) == (
        consumer_a,
        {"lang": "fr", "version": "/v2", "room": "lobby"},
    )


def test_nested_includes_strip_at_every_level():
    innermost = [route("http.request", consumer_b, path=r"^/detail/(?P<pk>\d+)/$")]
    middle = [include(innermost, path=r"^/items"), route("http.request", consumer_a, path=r"^/$")]
    outer = Router([include(middle, path=r"^/api/(?P<version>v\d)")])
    assert outer.match(Msg("http.request", path="/api/v1/items/detail/7/")) == (
        consumer_b,
        {"version": "v1", "pk": "7"},
    )
    assert outer.match(Msg("http.request", path="/api/v1/")) == (consumer_a, {"version": "v1"})
    assert outer.match(Msg("http.request", path="/api/v1/items/detail/x/")) is None


def test_include_with_a_filter_on_another_key_and_channel_names():
    r = include(
        [route("http.request", consumer_a), route("http.disconnect", consumer_b)],
        method=r"^GET$",
    )
    assert r.channel_names() == {"http.request", "http.disconnect"}
    assert r.match(Msg("http.request", method="GET")) == (consumer_a, {})
    assert r.match(Msg("http.request", method="POST")) is None


def test_include_by_dotted_path():
    r = include("tests.routing.sample_routing.inner_routes", path=r"^/chat")
    assert r.match(Msg("websocket.receive", path="/chat/room/x/")) == (sample_routing.chat, {"room": "x"})


# -- route_class ----------------------------------------------------------------------------


class ChatConsumer:
    @classmethod
    def channel_names(cls):
        return {"websocket.connect", "websocket.receive"}

    def __init__(self, message, **kwargs):
        self.kwargs = kwargs


def test_route_class_takes_channels_from_channel_names():
    r = route_class(ChatConsumer, path=r"^/live/(?P<id>\d+)$")
    assert isinstance(r, RouteClass)
    assert r.channel_names() == {"websocket.connect", "websocket.receive"}
    assert r.match(Msg("websocket.receive", path="/live/4")) == (ChatConsumer, {"id": "4"})
    assert r.match(Msg("websocket.disconnect", path="/live/4")) is None


def test_route_class_needs_channel_names():
    with pytest.raises(RoutingError, match="has no channel_names"):
        route_class(consumer_a)


# -- Router ---------------------------------------------------------------------------------


def test_first_match_wins_in_list_order():
    router = Router(
        [
            route("websocket.connect", consumer_a, path=r"^/a/"),
            route("websocket.connect", consumer_b, path=r"^/"),
            route("websocket.connect", consumer_a),
        ]
    )
    assert router.match(Msg("websocket.connect", path="/a/x"))[0] is consumer_a
    assert router.match(Msg("websocket.connect", path="/b/"))[0] is consumer_b
    assert router.match(Msg("websocket.connect"))[0] is consumer_a  # no path: only the filterless route
    assert router.match(Msg("http.request", path="/")) is None


def test_router_channels_is_the_union_of_every_level():
    router = Router(
        [
            route("websocket.connect", consumer_a),
            include([route("http.request", consumer_a), include([route("custom.channel", consumer_b)])]),
            route_class(ChatConsumer),
        ]
    )
    assert router.channels == {"websocket.connect", "websocket.receive", "http.request", "custom.channel"}
    router.add_route(route("late.channel", consumer_a))
    assert "late.channel" in router.channels


def test_legacy_dict_routing():
    router = Router(sample_routing.legacy_routing)
    assert router.channels == {"websocket.connect", "websocket.receive"}
    assert router.match(Msg("websocket.receive", path="/x")) == (sample_routing.receive, {})
    assert Router("tests.routing.sample_routing.legacy_routing").match(Msg("websocket.connect"))[0] is (
        sample_routing.connect
    )


def test_duck_typed_routing_entries():
    class Custom:
        def match(self, message):
            return (consumer_b, {"custom": True}) if message.content.get("x") == 1 else None

        def channel_names(self):
            return {"custom.channel"}

    router = Router([Custom()])
    assert router.channels == {"custom.channel"}
    assert router.match(Msg("custom.channel", x=1)) == (consumer_b, {"custom": True})


def test_router_does_not_modify_the_users_list():
    routes = [route("websocket.connect", consumer_a)]
    router = Router(routes)
    router.add_route(route("http.request", consumer_b))
    assert len(routes) == 1


def test_check_default_appends_the_fallbacks_the_router_was_built_with():
    def fallback(message, **kwargs):
        pass

    def default_routes(http_consumer):
        return [route("http.request", http_consumer), route("websocket.connect", fallback)]

    router = Router([route("websocket.connect", consumer_a, path=r"^/mine/$")], default_routes=default_routes)
    router.check_default(http_consumer=consumer_b)
    assert router.channels == {"websocket.connect", "http.request"}
    assert router.match(Msg("websocket.connect", path="/mine/"))[0] is consumer_a
    assert router.match(Msg("websocket.connect", path="/other/"))[0] is fallback
    assert router.match(Msg("http.request", path="/"))[0] is consumer_b


def test_check_default_without_default_routes_says_how_to_build_the_router():
    with pytest.raises(RuntimeError, match="router_for"):
        Router([route("websocket.connect", consumer_a)]).check_default()


def test_django_routers_append_the_channels_core_fallbacks_after_user_routes():
    from channels_core.routing import accept_connection, null_consumer, router_for

    def http_consumer(message, **kwargs):
        pass

    router = router_for([route("websocket.connect", consumer_a, path=r"^/mine/$")])
    router.check_default(http_consumer=http_consumer)
    assert router.channels == {
        "websocket.connect",
        "websocket.receive",
        "websocket.disconnect",
        "http.request",
        "http.disconnect",
    }
    # The user's route still wins; the fallbacks catch the rest.
    assert router.match(Msg("websocket.connect", path="/mine/"))[0] is consumer_a
    assert router.match(Msg("websocket.connect", path="/other/"))[0] is accept_connection
    assert router.match(Msg("websocket.receive", path="/x/"))[0] is null_consumer
    assert router.match(Msg("websocket.disconnect", path="/x/"))[0] is null_consumer
    assert router.match(Msg("http.disconnect", path="/x/"))[0] is null_consumer
    assert router.match(Msg("http.request", path="/"))[0] is http_consumer


def test_class_aliases():
    assert route is Route and include is Include and route_class is RouteClass
