"""Pieces of Redis URLs that name several hosts (`redis+sentinel://`, `redis+cluster://`)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote


def redact(url: str) -> str:
    """`url` with any password replaced by ***: messages end up in logs."""
    return re.sub(r"(?<=:)[^:/@]+(?=@)", "***", url)


def host_list(netloc: str, options: dict[str, Any], default_port: int, what: str, error: str) -> list[tuple[str, int]]:
    """The `(host, port)` pairs of `[[user]:password@]h1:p1,h2:p2`; the credentials go into `options`.

    `what` names one host in messages ("a sentinel"); `error` starts each message (the setting and URL).
    """
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        if user:
            options["username"] = unquote(user)
        if password:
            options["password"] = unquote(password)
    hosts = []
    for item in filter(None, netloc.split(",")):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", str(default_port))
        if not host or not port.isdigit():
            raise ValueError(f"{error}: {item!r} is not host:port of {what}")
        hosts.append((host, int(port)))
    return hosts
