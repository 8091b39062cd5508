"""Per-channel capacity: a default plus glob or regex overrides, first match wins.

Capacity is counted per queue, so every `prefix!local` channel of one
process shares the capacity of `prefix!`, and rules are matched against that
queue name (a glob such as `http.response!*` matches `http.response!`).

A process queue (`prefix!`, e.g. an interface server's reply queue) serves
every connection of its process at once, and one group broadcast is one
element in it: unless a rule matches it, its capacity is
`max(default, PROCESS_QUEUE_CAPACITY)`, so a burst to a thousand sockets of
one server (or a broadcast while it is busy) is not refused at 100.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping

Rule = str | re.Pattern

PROCESS_QUEUE_CAPACITY = 10_000
"""The default capacity of a process queue (`prefix!`) that no rule matches (see the module docstring)."""


class CapacityRules:
    """Resolves the capacity of a queue name from a default and ordered overrides."""

    def __init__(self, default: int, overrides: Mapping[Rule, int] | None = None) -> None:
        if not isinstance(default, int) or default < 1:
            raise ValueError(f"capacity must be a positive integer, not {default!r}")
        self.default = default
        self.rules: list[tuple[Rule, re.Pattern, int]] = []
        for rule, value in (overrides or {}).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"channel_capacity[{rule!r}] must be a positive integer, not {value!r}")
            if isinstance(rule, str):
                compiled = re.compile(fnmatch.translate(rule))
            elif isinstance(rule, re.Pattern):
                compiled = rule
            else:
                raise ValueError(f"channel_capacity keys must be glob strings or compiled regexes, not {rule!r}")
            self.rules.append((rule, compiled, value))
        # Last, so any user rule wins: process queues default to a capacity that survives bursts.
        self.rules.append(("*!", re.compile(fnmatch.translate("*!")), max(default, PROCESS_QUEUE_CAPACITY)))
        self._cache: dict[str, int] = {}

    @property
    def has_regex_rules(self) -> bool:
        return any(not isinstance(rule, str) for rule, _, _ in self.rules)

    def get(self, name: str) -> int:
        """The capacity of the queue `name`."""
        try:
            return self._cache[name]
        except KeyError:
            pass
        value = self.default
        for _, compiled, capacity in self.rules:
            if compiled.match(name):
                value = capacity
                break
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[name] = value
        return value

    def lua_rules(self) -> list[tuple[str, int]]:
        """The glob rules as anchored Lua patterns, for server-side capacity checks."""
        return [(glob_to_lua(rule), value) for rule, _, value in self.rules if isinstance(rule, str)]


_LUA_MAGIC = set("^$()%.[]*+-?")


def glob_to_lua(glob: str) -> str:
    """Translate an fnmatch glob into an anchored Lua pattern with the same matches."""
    out = ["^"]
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i
            if j < n and glob[j] == "!":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:
                out.append("%[")
                continue
            body = glob[i:j]
            i = j + 1
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            chars = []
            k = 0
            while k < len(body):
                if k + 2 < len(body) and body[k + 1] == "-":
                    chars.append(_lua_class_char(body[k]) + "-" + _lua_class_char(body[k + 2]))
                    k += 3
                else:
                    chars.append(_lua_class_char(body[k]))
                    k += 1
            out.append("[" + ("^" if negate else "") + "".join(chars) + "]")
        else:
            out.append("%" + c if c in _LUA_MAGIC else c)
    out.append("$")
    return "".join(out)


def _lua_class_char(c: str) -> str:
    return "%" + c if not c.isalnum() else c
