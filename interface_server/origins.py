"""`--allowed-origins`: which `Origin` a WebSocket handshake may carry, checked before anything reaches the layer.

Browsers send `Origin` on every WebSocket handshake and let any page open
a socket to any server, with the user's cookies (cross-site WebSocket
hijacking); the server refuses a foreign page's handshake with 403 before
a `websocket.connect` is sent, so no consumer runs and no channel is used.

Patterns (case-insensitive):

- `https://example.com`, `http://localhost:8000`: that exact origin (scheme,
  host and port; a missing port is the scheme's default, so
  `https://example.com` also matches `https://example.com:443`);
- `example.com`: that host, on any scheme and port;
- `*.example.com`: any subdomain (not `example.com` itself: list it
  too), on any scheme and port; `https://*.example.com` on that scheme
  and its default port (or the port given: `https://*.example.com:8443`);
- `*`: anything, including no `Origin` and `Origin: null`.

With no patterns every handshake is accepted (the default). Otherwise a
handshake without `Origin` (a non-browser client), with `Origin: null`
(sandboxed frames, `file:` pages), with several `Origin` headers or an
unparsable one is refused unless `*` is listed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

logger = logging.getLogger("interface_server.websocket")

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int | None


def _parse(text: str) -> _Origin | None:
    """scheme://host[:port] as an `_Origin` (port filled from the scheme), or None if it is not one.

    Browsers send hosts punycoded: an Origin with non-ASCII, spaces or controls is not one.
    """
    text = text.strip()
    if not text.isascii() or not text.isprintable() or " " in text:
        return None
    try:
        parts = urlsplit(text)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not host or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    scheme = parts.scheme.lower()
    return _Origin(scheme, host.lower().rstrip("."), port if port is not None else DEFAULT_PORTS.get(scheme))


@dataclass(frozen=True)
class _Pattern:
    scheme: str | None  # None: any scheme
    host: str  # without the "*." of a wildcard
    port: int | None  # None: any port
    subdomains: bool  # True for "*.host": subdomains of host only

    def matches(self, origin: _Origin) -> bool:
        if self.scheme is not None and origin.scheme != self.scheme:
            return False
        if self.port is not None and origin.port != self.port:
            return False
        if self.subdomains:
            return origin.host.endswith("." + self.host)
        return origin.host == self.host


def _pattern(text: str) -> _Pattern:
    raw = text.strip().lower()
    scheme: str | None = None
    if "://" in raw:
        scheme, _, rest = raw.partition("://")
    else:
        rest = raw
    subdomains = rest.startswith("*.")
    if subdomains:
        rest = rest[2:]
    if not rest or "*" in rest or "/" in rest.rstrip("/"):
        raise ValueError(f"--allowed-origins {text!r}: write an origin (https://example.com), a host or *.host")
    if scheme is None:
        host, port = rest.rstrip("/"), None
        if host.count(":") == 1:  # example.com:8000 (an IPv6 literal needs a scheme and brackets)
            host, _, port_text = host.partition(":")
            port = _port(text, port_text)
        return _Pattern(None, host.rstrip("."), port, subdomains)
    parsed = _parse(f"{scheme}://{'x.' if subdomains else ''}{rest}")
    if parsed is None:
        raise ValueError(f"--allowed-origins {text!r} is not an origin such as https://example.com")
    host = parsed.host[2:] if subdomains else parsed.host
    return _Pattern(scheme, host, parsed.port, subdomains)


def _port(text: str, port_text: str) -> int:
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"--allowed-origins {text!r}: bad port {port_text!r}")
    return int(port_text)


class OriginPolicy:
    """The `--allowed-origins` patterns; `refusal(headers)` says why a handshake is refused, or None."""

    def __init__(self, allowed: Sequence[str]) -> None:
        """Raises ValueError for a pattern that is not an origin, a host or `*.host`."""
        self.allow_any = not allowed or any(p.strip() == "*" for p in allowed)
        self.patterns = [_pattern(p) for p in allowed if p.strip() != "*"]

    def refusal(self, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """None to accept a handshake with these headers (lowercase names), else why it is refused."""
        if self.allow_any:
            return None
        values = [value for name, value in headers if name.lower() == b"origin"]
        if not values:
            return "no Origin header"
        if len(values) > 1:
            return "several Origin headers"
        text = values[0].decode("latin-1")
        if text.strip().lower() == "null":
            return "Origin: null"
        origin = _parse(text)
        if origin is None:
            return f"unparsable Origin {text[:100]!r}"
        if not any(pattern.matches(origin) for pattern in self.patterns):
            return f"Origin {text[:100]!r} is not in --allowed-origins"
        return None


_POLICIES: dict[tuple[str, ...], OriginPolicy] = {}


def policy_for(allowed: Sequence[str]) -> OriginPolicy:
    """The (cached) policy for a config's `allowed_origins`: parsed once per server, not per handshake.

    A pattern that does not parse is logged once as an error and matches
    nothing (refusing too much, never too little); `OriginPolicy(allowed)`
    raises instead, for checking the option at start-up.
    """
    key = tuple(allowed)
    policy = _POLICIES.get(key)
    if policy is None:
        usable = []
        for pattern in allowed:
            try:
                OriginPolicy([pattern])
            except ValueError as exc:
                logger.error("%s; it is ignored", exc)
            else:
                usable.append(pattern)
        policy = _POLICIES[key] = OriginPolicy(usable) if usable or not allowed else _REFUSE_ALL
    return policy


class _RefuseAll(OriginPolicy):
    def __init__(self) -> None:
        super().__init__(["refuse.invalid"])

    def refusal(self, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        return "no usable pattern in --allowed-origins"


_REFUSE_ALL = _RefuseAll()
