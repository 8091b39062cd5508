"""Consistent hashing of names onto Redis servers."""

from __future__ import annotations

import bisect
import hashlib


def _hash(value: str) -> int:
    return int.from_bytes(hashlib.md5(value.encode("utf8")).digest()[:8], "big")


class HashRing:
    """A hash ring with virtual nodes: adding a server moves about 1/N of the names.

    Nodes are identified by name (the server's label), so the order of the
    `hosts` list does not matter.
    """

    def __init__(self, nodes: list[str], replicas: int = 160) -> None:
        self.size = len(nodes)
        points = sorted((_hash(f"{node}#{r}"), index) for index, node in enumerate(nodes) for r in range(replicas))
        self._keys = [p[0] for p in points]
        self._nodes = [p[1] for p in points]
        self._cache: dict[str, int] = {}

    def get(self, name: str) -> int:
        """The index of the node that owns `name`."""
        if self.size == 1:
            return 0
        try:
            return self._cache[name]
        except KeyError:
            pass
        pos = bisect.bisect(self._keys, _hash(name)) % len(self._keys)
        node = self._nodes[pos]
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[name] = node
        return node
