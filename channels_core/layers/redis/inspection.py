"""The `inspection` and `queue_wait` extensions of the Redis layer: what operators see.

Finding the queues and groups: every key of a queue is `prefix + tag + name`
and every group's part on a shard is the sorted set `prefix + tag + "group:" +
group` (the tag is a Redis Cluster bucket's `{NNNN}`, empty elsewhere). Names
never hold ':' or '#', so a key whose rest holds one is internal (a group's
sub-sets, its index, ordering state, leases, counters). Each Redis server is
SCANned (never KEYS) for lists, or sorted sets, under the prefix: `TYPE` and
`MATCH` filter on the server, `SCAN_COUNT` keys per step, and every server's step
goes out before any reply is read, so a step costs one round trip of wall
time whatever the number of servers. A SCAN visits every key of the
database (MATCH filters, it does not skip), so the cost grows with the keys:
10,000 sockets of a few interface servers are a few queue keys (a process's
channels share its queue) but, under `enforce_ordering`, 10,000 ordering
hashes; with 1,000 groups that is about 16,000 keys, 8 steps.

Reading them: one read-only script per shard (one pipeline per server) gives,
per queue, the live messages and the deadline of the oldest (expired ones,
which the next send or pop purges, are skipped with a binary search over the
deadlines, which grow along a list), and per group its live members: a
process queue's sockets are counted with ZCOUNT on its sub-set, never listed.
No message body leaves Redis.

Queue waits: `Decoder` records, per thread, how long each message it hands
out waited (see `decoding.QueueWaits`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import redis.exceptions as rexc

from .keys import glob_escape
from .scripts import Script

SCAN_COUNT = 2000
"""Keys a SCAN step visits: about 2 ms of the server's time on a loaded 2-core VM (1 µs a key). Fewer
steps matter when the machine is busy (each step waits for every server); on a 3-master cluster
with 10,000 sockets, 2,500 instead of 1,000 took the status from 89 to 77 ms (median of 6)."""
_KEYS_PER_CALL = 200  # bounds one script's run, so how long it holds the server (~1 ms for 200 groups)
_QUEUE_RE = re.compile(rb"[a-zA-Z\d\-_.]+([?!][a-zA-Z\d\-_.]*)?")
_GROUP_RE = re.compile(rb"[a-zA-Z\d\-_.]+")
_GROUP_MARK = b"group:"

# KEYS: queues of one shard  -> {now_ms, then per key: live elements, deadline of the oldest live one (0: none)}
QUEUE_HEADS = Script(
    "inspect_queues",
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function deadline(key, i)
  -- an element this layer did not write counts as expired, as in the purge
  return tonumber(string.sub(redis.call('LINDEX', key, i) or '', 1, 14)) or 0
end
local out = {now}
for i = 1, #KEYS do
  local key = KEYS[i]
  local live, oldest = 0, 0
  -- pcall: a key that stopped being a list since the SCAN answers an error, not a length
  local len = redis.pcall('LLEN', key)
  if type(len) == 'number' and len > 0 then
    oldest = deadline(key, 0)
    if oldest <= now then
      -- deadlines grow along the list: the first live element by binary search
      local lo, hi = 1, len
      while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if deadline(key, mid) > now then hi = mid else lo = mid + 1 end
      end
      live = len - lo
      oldest = live > 0 and deadline(key, lo) or 0
    else
      live = len
    end
  end
  out[#out + 1] = live
  out[#out + 1] = oldest
end
return out
""",
)

# KEYS: groups' parts on one shard.  ARGV: group_expiry_s  -> live members of each
GROUP_SIZES = Script(
    "inspect_groups",
    """
local t = redis.call('TIME')
local live = '(' .. string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000 - tonumber(ARGV[1]))
local out = {}
for i = 1, #KEYS do
  local n = 0
  local queues = redis.pcall('ZRANGEBYSCORE', KEYS[i], live, '+inf')
  if not queues.err then
    for _, q in ipairs(queues) do
      if string.sub(q, -1) == '!' then
        n = n + redis.call('ZCOUNT', KEYS[i] .. ':' .. q, live, '+inf')
      else
        n = n + 1
      end
    end
  end
  out[i] = n
end
return out
""",
)


class RedisInspection:
    """Mixin for `RedisChannelLayer`: `inspect_queues`, `inspect_groups` and `last_queue_waits`.

    List "inspection" and "queue_wait" in `extensions`.
    """

    def inspect_queues(self, limit: int = 1000) -> list[dict]:
        """The non-empty queues, fullest first, at most `limit` (see `contract.InspectionExtension`).

        `pending` counts list elements, as capacity does: a group send to
        several sockets of one process is one. Expired messages not yet
        purged are not counted.
        """
        keys = self.keys  # type: ignore[attr-defined]
        found = _by_shard(self, self._scan("list"), lambda rest: bool(_QUEUE_RE.fullmatch(rest)))
        calls = [(shard, chunk, ()) for shard, chunk in _chunks(found)]
        out = []
        for (_, chunk, _), reply in zip(calls, self._evalsha_each(QUEUE_HEADS, calls), strict=True):  # type: ignore[attr-defined]
            now = int(reply[0])
            for i, key in enumerate(chunk):
                live, deadline = int(reply[1 + 2 * i]), int(reply[2 + 2 * i])
                if live:
                    qname = keys.queue_name(key)
                    age = (now - (deadline - self._expiry_ms)) / 1000  # type: ignore[attr-defined]
                    out.append(
                        {
                            "channel": qname,
                            "pending": live,
                            "oldest_age": max(0.0, age),
                            "capacity": self.capacity_rules.get(qname),  # type: ignore[attr-defined]
                        }
                    )
        out.sort(key=lambda q: (-q["pending"], -q["oldest_age"], q["channel"]))
        return out[: max(0, limit)]

    def inspect_groups(self, limit: int = 1000) -> list[dict]:
        """The groups with live members, largest first, at most `limit` (see `contract.InspectionExtension`)."""
        start = len(_GROUP_MARK)

        def is_group(rest: bytes) -> bool:
            return rest.startswith(_GROUP_MARK) and bool(_GROUP_RE.fullmatch(rest, start))

        # A group's sub-sets ("group:g:server!") end with '!', which no group name holds: the server skips them.
        found = _by_shard(self, self._scan("zset", "*group:*[^!]"), is_group)
        calls = [(shard, chunk, (self._group_ttl,)) for shard, chunk in _chunks(found)]  # type: ignore[attr-defined]
        sizes: dict[str, int] = {}
        name_start = self.keys._name_start + start  # type: ignore[attr-defined]
        for (_, chunk, _), reply in zip(calls, self._evalsha_each(GROUP_SIZES, calls), strict=True):  # type: ignore[attr-defined]
            for key, members in zip(chunk, reply, strict=True):
                if members:
                    group = key[name_start:].decode("ascii")
                    sizes[group] = sizes.get(group, 0) + int(members)
        out = [{"group": group, "members": n} for group, n in sizes.items()]
        out.sort(key=lambda g: (-g["members"], g["group"]))
        return out[: max(0, limit)]

    def last_queue_waits(self) -> list[float]:
        """Seconds each message of this thread's last `receive`/`receive_batch` waited, in order.

        From its send (the deadline the server stamped, less the expiry) to
        the moment it was popped, on the Redis server's clock; a message a
        group send fanned out to several sockets of this process and kept
        here waits until the receive that hands it out.
        """
        return self.decoder.waits.last()  # type: ignore[attr-defined]

    def _scan(self, key_type: str, rest: str = "*") -> Iterator[tuple[int, bytes]]:
        """(server number, key) of every key of `key_type` under the prefix whose rest matches the glob `rest`.

        Each server is SCANned in step: one round trip of wall time per step.
        """
        pattern = glob_escape(self.keys.prefix) + rest  # type: ignore[attr-defined]
        servers = self._servers()  # type: ignore[attr-defined]
        cursors = {i: 0 for i in range(len(servers))}
        typed = True
        while cursors:
            order = list(cursors)
            commands = []
            for i in order:
                command: tuple = ("SCAN", cursors[i], "MATCH", pattern, "COUNT", SCAN_COUNT)
                commands.append((servers[i], command + (("TYPE", key_type) if typed else ())))
            try:
                replies = self._execute_each(commands)  # type: ignore[attr-defined]
            except rexc.ResponseError:
                if not typed:
                    raise
                typed = False  # Redis before 6.0 has no SCAN TYPE: the scripts skip keys of another type
                cursors = {i: 0 for i in range(len(servers))}
                continue
            for i, (cursor, keys) in zip(order, replies, strict=True):
                for key in keys:
                    yield i, key
                if int(cursor) == 0:
                    del cursors[i]
                else:
                    cursors[i] = cursor


def _by_shard(layer: Any, found: Iterator[tuple[int, bytes]], wanted: Any) -> dict[Any, list[bytes]]:
    """The keys whose rest (after their shard's prefix) `wanted` accepts, by the shard that holds them.

    With hash tags (Redis Cluster) the tag names the shard (bucket), so its
    script runs in that bucket's slot; without, a server is a shard.
    """
    keys = layer.keys
    shards = layer.shards
    by_prefix = {keys.shard_prefix(s.index): s for s in shards}
    tagged = len(by_prefix) > 1
    start = keys._name_start
    out: dict[Any, set[bytes]] = {}
    for server, key in found:
        if tagged:
            shard = by_prefix.get(key[:start])
        else:
            shard = shards[server] if key.startswith(keys.prefix_bytes) else None
        if shard is not None and wanted(key[start:]):
            out.setdefault(shard, set()).add(key)
    return {shard: sorted(keys_) for shard, keys_ in out.items()}


def _chunks(found: dict[Any, list[bytes]]) -> Iterator[tuple[Any, list[bytes]]]:
    for shard, keys in found.items():
        for i in range(0, len(keys), _KEYS_PER_CALL):
            yield shard, keys[i : i + _KEYS_PER_CALL]
