"""Reply-channel names are unguessable: at least 96 random bits per connection.

Whoever knows a reply channel can write to that socket (or add it to a
group), so the per-connection part must not be guessable: 16 URL-safe
characters from `secrets` (6 bits each) after the server's own prefix.
"""

from __future__ import annotations

import math
import string
from collections import Counter

from channels_core.layers import InMemoryChannelLayer
from channels_core.layers.names import validate_channel_name
from interface_server.server import Server

URL_SAFE = set(string.ascii_letters + string.digits + "-_")


def suffixes(server: Server, count: int) -> list[str]:
    out = []
    for _ in range(count):
        channel = server.new_reply_channel(object())
        validate_channel_name(channel)
        assert channel.startswith(server.reply_prefix)
        out.append(channel[len(server.reply_prefix) :])
        server.forget_reply_channel(channel)
    return out


def test_each_connection_gets_16_url_safe_characters_96_bits():
    got = suffixes(Server(InMemoryChannelLayer()), 2000)
    assert {len(s) for s in got} == {16}
    assert set("".join(got)) <= URL_SAFE
    assert 16 * math.log2(len(URL_SAFE)) >= 96


def test_unique_over_many_connections_and_servers():
    got = suffixes(Server(InMemoryChannelLayer()), 100_000)
    assert len(set(got)) == len(got)
    prefixes = {Server(InMemoryChannelLayer()).reply_prefix for _ in range(200)}
    assert len(prefixes) == 200


def test_every_position_uses_the_whole_alphabet_evenly():
    """A crude check that all 64 symbols appear at every position with about equal frequency (not a constant part)."""
    got = suffixes(Server(InMemoryChannelLayer()), 20_000)
    for position in range(16):
        counts = Counter(s[position] for s in got)
        assert len(counts) == 64, position
        expected = len(got) / 64  # 312.5; a chi-square over 63 degrees of freedom stays far below 160
        chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
        assert chi2 < 160, (position, chi2)
