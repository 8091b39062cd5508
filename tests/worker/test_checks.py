"""System checks: every CHANNEL_LAYERS mistake is reported by `manage.py check` with its id."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import override_settings

REDIS = "channels_core.layers.RedisChannelLayer"
INMEMORY = "channels_core.layers.InMemoryChannelLayer"
GOOD_ROUTING = "tests.routing.sample_routing.channel_routing"


def channel_errors(layers) -> list:
    with override_settings(CHANNEL_LAYERS=layers):
        return [m for m in run_checks(tags=["channels"]) if m.id.startswith("channels_core.E")]


def ids(layers) -> list[str]:
    return [m.id for m in channel_errors(layers)]


def test_valid_configuration_has_no_errors():
    assert ids({"default": {"BACKEND": INMEMORY, "ROUTING": GOOD_ROUTING}}) == []
    assert ids({"default": {"BACKEND": REDIS, "CONFIG": {"hosts": ["redis://x:1/0"]}, "ROUTING": GOOD_ROUTING}}) == []


def test_project_settings_pass():
    with override_settings():
        assert [m for m in run_checks(tags=["channels"]) if m.id.startswith("channels_core.E")] == []


@pytest.mark.parametrize(
    "config, needle",
    [
        ({"ROUTING": GOOD_ROUTING}, "has no BACKEND"),
        ({"BACKEND": "asgi_redis.RedisChannelLayer", "ROUTING": GOOD_ROUTING}, "cannot be imported"),
        ({"BACKEND": "channels_core.layers.NoSuchLayer", "ROUTING": GOOD_ROUTING}, "cannot be imported"),
    ],
)
def test_e001_missing_or_unknown_backend(config, needle):
    errors = channel_errors({"default": config})
    assert [e.id for e in errors] == ["channels_core.E001"]
    assert needle in errors[0].msg and "CHANNEL_LAYERS['default']" in errors[0].msg


@pytest.mark.parametrize(
    "backend, replacement",
    [
        ("asgi_redis.RedisChannelLayer", "is channels_core.layers.RedisChannelLayer"),
        ("asgi_redis.RedisSentinelChannelLayer", "is channels_core.layers.RedisSentinelChannelLayer"),
        ("asgiref.inmemory.ChannelLayer", "is channels_core.layers.InMemoryChannelLayer"),
        ("myproject.NoSuchLayer", "RedisClusterChannelLayer"),
    ],
)
def test_e001_hint_names_the_new_backend_path(backend, replacement):
    (error,) = channel_errors({"default": {"BACKEND": backend, "ROUTING": GOOD_ROUTING}})
    assert replacement in error.hint


def test_e002_missing_routing():
    errors = channel_errors({"default": {"BACKEND": INMEMORY}})
    assert [e.id for e in errors] == ["channels_core.E002"]
    assert "has no ROUTING" in errors[0].msg


@pytest.mark.parametrize(
    "routing, needle",
    [
        (
            "tests.routing.sample_routing.unimportable_consumer_routing",
            "No module named 'tests.routing.no_such_module'",
        ),
        ("tests.routing.sample_routing.missing_attribute_routing", "has no 'no_such_consumer'"),
        ("tests.routing.bad_regex_routing.channel_routing", "is not a valid regex"),
        ("tests.routing.no_such_routing.channel_routing", "cannot be imported"),
        ("tests.routing.sample_routing.nothing_here", "has no 'nothing_here'"),
        ("tests.routing.sample_routing.not_a_routing", "must be a list of routes"),
    ],
)
def test_e003_broken_routing(routing, needle):
    errors = channel_errors({"default": {"BACKEND": INMEMORY, "ROUTING": routing}})
    assert [e.id for e in errors] == ["channels_core.E003"], errors
    assert needle in errors[0].msg


@pytest.mark.parametrize(
    "config, needle",
    [
        ({"bogus_option": 1}, "bogus_option"),
        ({"prefix": ""}, "prefix must be a non-empty str"),
        ({"capacity": 0}, "capacity must be a positive integer"),
    ],
)
def test_e004_config_the_backend_rejects(config, needle):
    errors = channel_errors({"default": {"BACKEND": REDIS, "CONFIG": config, "ROUTING": GOOD_ROUTING}})
    assert [e.id for e in errors] == ["channels_core.E004"]
    assert needle in errors[0].msg and "['CONFIG']" in errors[0].msg


def test_every_alias_is_checked_and_errors_accumulate():
    errors = channel_errors(
        {
            "default": {"BACKEND": INMEMORY, "ROUTING": GOOD_ROUTING},
            "broken": {"BACKEND": REDIS, "CONFIG": {"nope": 1}},
        }
    )
    assert sorted(e.id for e in errors) == ["channels_core.E002", "channels_core.E004"]
    assert all("CHANNEL_LAYERS['broken']" in e.msg for e in errors)
