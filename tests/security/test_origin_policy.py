"""`--allowed-origins` patterns (interface_server/origins.py), unit by unit."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interface_server.origins import OriginPolicy, policy_for


def refusal(allowed: list[str], *origins: str | bytes) -> str | None:
    headers = [(b"host", b"x")] + [(b"origin", o.encode("latin-1") if isinstance(o, str) else o) for o in origins]
    return OriginPolicy(allowed).refusal(headers)


def accepted(allowed: list[str], origin: str) -> bool:
    return refusal(allowed, origin) is None


def test_no_patterns_accepts_everything_even_no_origin():
    assert refusal([]) is None
    assert accepted([], "null")
    assert accepted([], "https://evil.example")


def test_star_accepts_everything_even_no_origin_and_null():
    assert refusal(["*"]) is None
    assert accepted(["*"], "null")
    assert accepted(["https://a.com", "*"], "http://b.com:1")


EXACT = ["https://example.com", "http://localhost:8000"]


@pytest.mark.parametrize(
    "origin, ok",
    [
        ("https://example.com", True),
        ("https://example.com:443", True),  # the default port is the same origin
        ("HTTPS://EXAMPLE.COM", True),  # scheme and host are case-insensitive
        ("https://example.com/", True),
        ("http://example.com", False),  # scheme mismatch
        ("https://example.com:8443", False),  # port mismatch
        ("https://www.example.com", False),  # a subdomain is another origin
        ("https://example.com.evil.net", False),
        ("https://evilexample.com", False),
        ("http://localhost:8000", True),
        ("http://localhost", False),  # port 80, not 8000
        ("http://localhost:8001", False),
        ("https://localhost:8000", False),
        ("https://user@example.com", False),  # no browser sends userinfo
        ("https://example.com/path", False),  # not an origin
        ("example.com", False),  # no scheme
        ("null", False),
        ("", False),
        ("https://", False),
        ("https://example.com:99999", False),  # bad port
        ("https://[::1", False),
    ],
)
def test_exact_origins(origin, ok):
    assert accepted(EXACT, origin) is ok, refusal(EXACT, origin)


@pytest.mark.parametrize(
    "pattern, origin, ok",
    [
        ("*.example.com", "https://a.example.com", True),
        ("*.example.com", "http://a.b.example.com:8080", True),  # any depth, scheme and port
        ("*.example.com", "https://example.com", False),  # not the apex itself
        ("*.example.com", "https://badexample.com", False),
        ("*.example.com", "https://example.com.evil.net", False),
        ("*.example.com", "https://a.example.community", False),
        ("https://*.example.com", "https://a.example.com", True),
        ("https://*.example.com", "http://a.example.com", False),
        ("https://*.example.com", "https://a.example.com:8443", False),  # a scheme fixes its default port
        ("https://*.example.com:8443", "https://a.example.com:8443", True),
        ("https://*.example.com:8443", "https://a.example.com", False),
        ("example.com", "https://example.com:1234", True),  # a bare host: any scheme and port
        ("example.com", "https://a.example.com", False),
        ("example.com:8000", "http://example.com:8000", True),
        ("example.com:8000", "http://example.com", False),
        ("http://[::1]:8000", "http://[::1]:8000", True),
        ("http://[::1]:8000", "http://[::2]:8000", False),
    ],
)
def test_wildcards_and_hosts(pattern, origin, ok):
    assert accepted([pattern], origin) is ok, refusal([pattern], origin)


def test_missing_null_several_and_unparsable_origins_are_refused_with_a_reason():
    allowed = ["https://example.com"]
    assert refusal(allowed) == "no Origin header"
    assert refusal(allowed, "null") == "Origin: null"
    assert refusal(allowed, "https://example.com", "https://example.com") == "several Origin headers"
    assert "unparsable" in refusal(allowed, "https://exa mple.com:x")
    assert "not in --allowed-origins" in refusal(allowed, "https://evil.example")
    assert "unparsable" in refusal(allowed, b"https://\xff\xfe")


@pytest.mark.parametrize("bad", ["https://a.com/path", "*", "", "a*.com", "https://*", "example.com:http", "*.*.com"])
def test_bad_patterns_raise(bad):
    if bad == "*":
        OriginPolicy([bad])  # "*" is valid
        return
    with pytest.raises(ValueError, match="--allowed-origins"):
        OriginPolicy([bad])


def test_policy_for_ignores_a_bad_pattern_with_an_error_and_refuses_when_none_is_usable(caplog):
    caplog.set_level(logging.ERROR, "interface_server.websocket")
    policy = policy_for(["https://ok.example", "https://bad.example/path"])
    assert policy.refusal([(b"origin", b"https://ok.example")]) is None
    assert "bad.example/path" in caplog.text
    none_usable = policy_for(["https://only-bad.example/x"])
    assert none_usable.refusal([(b"origin", b"https://only-bad.example")]) is not None
    assert policy_for(["https://ok.example", "https://bad.example/path"]) is policy  # parsed once


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=3), st.lists(st.text(max_size=20), min_size=1, max_size=3))
def test_any_origin_bytes_get_an_answer_never_an_exception(values, patterns):
    try:
        policy = OriginPolicy(patterns)
    except ValueError:
        policy = policy_for(patterns)
    result = policy.refusal([(b"origin", v) for v in values])
    assert result is None or isinstance(result, str)


def test_a_bad_pattern_stops_the_server_at_start():
    from interface_server.cli import UsageError, build_parser, config_from_args

    args = build_parser().parse_args(
        ["--allowed-origins", "https://ok.example", "--allowed-origins", "https://x/p", "l:a"]
    )
    with pytest.raises(UsageError, match="--allowed-origins 'https://x/p'"):
        config_from_args(args, {})
    args = build_parser().parse_args(["--allowed-origins", "*.example.com", "--allowed-origins", "*", "l:a"])
    assert config_from_args(args, {}).allowed_origins == ["*.example.com", "*"]
