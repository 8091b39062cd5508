"""Group history on Redis: a stream per group, positions given where the message is delivered, atomic resume.

Keys, next to the group's member set `G` on the group's home shard (the one
shard with one server; on several shards and on Redis Cluster the shard the
ring gives the group, see `group_index`; the hash tag in `G` keeps all of
them in one slot):

    G#h    a stream of the group's messages: id "OFFSET-0", fields p (payload) and t (ms sent);
           XADD ... MAXLEN (~ from 1,000 entries up) keeps it bounded
    G#hm   a hash: epoch, last (the last offset given)
    G#hl   (several shards only) the group's history lock

Both expire `ttl` seconds after the last send. The epoch is made from the
server's TIME when a script finds the history lost (never kept, flushed,
Redis restarted without its data, expired): positions of an older epoch
cannot be resumed from and get `recovered: false`.

The position travels in the element's framing, after the targets
(`targets|GROUP|EPOCH|OFFSET\\n`, see `framing`), and the decoder wraps the
text (`channels_core.layers.history`): one push per interface server still
serves all its sockets, whatever their number.

One server: HISTORY_SEND is GROUP_SEND (see `scripts.py`) with the append in
front of the delivery, so one script gives the message its offset, keeps it
and pushes it to every member; HISTORY_JOIN adds a member as GROUP_ADD does
and, in the same script, pushes into its queue the kept messages after
`since` and then a status element (`...|OFFSET|r` recovered, `|n` not) that
the decoder turns into the status frame. Members of one queue see offsets in
order, and a join sees each message either in the stream or live.

Several shards (client-side shards, Redis Cluster): a group's members live on
the shards of their queues, and no script spans shards, so the group's sends
and history joins take turns under a lock on the home shard (`SET NX PX`):
a send appends on the home (HISTORY_APPEND), delivers with GROUP_SEND_MARKED
on every shard (one round trip per server; the index of `group_index` is not
used for these groups), then unlocks; a join adds the member (`group_index.add`),
reads what it missed on the home (HISTORY_READ) and pushes it with the status
into the member's queue (REPLAY_PUSH), then unlocks. The lock lasts at most
`LOCK_MS`: a holder that dies frees it then. Sends to one such group are
serialised (a few round trips each); groups without history are untouched.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from ..errors import LayerConnectionError
from ..history import LATEST, HistoryRule, Position
from . import group_index
from .keys import split
from .scripts import _NOW, GROUP_SEND, Script

if TYPE_CHECKING:
    from .layer import RedisChannelLayer

LOCK_MS = 5000
"""How long a group's history lock lasts at most (a send or a join holds it for a few round trips)."""
LOCK_WAIT = 10.0
"""Seconds a send or join waits for the lock before it raises LayerConnectionError."""

_STATE = """
local function history_state(hkey, hmeta, ttl_ms)
  local m = redis.call('HMGET', hmeta, 'epoch', 'last')
  if m[1] and (m[2] == '0' or redis.call('EXISTS', hkey) == 1) then
    return m[1], tonumber(m[2])
  end
  -- Lost, or never kept: a new epoch, from the server's clock (it moves on across restarts).
  local epoch = string.format('%x%05x', tonumber(t[1]), tonumber(t[2]))  -- t: the script's TIME (_NOW)
  redis.call('DEL', hkey)
  redis.call('HSET', hmeta, 'epoch', epoch, 'last', 0)
  redis.call('PEXPIRE', hmeta, ttl_ms)
  return epoch, 0
end

local function history_append(hkey, hmeta, payload, size, ttl_ms)
  local epoch, last = history_state(hkey, hmeta, ttl_ms)
  last = last + 1
  if tonumber(size) >= 1000 then
    redis.call('XADD', hkey, 'MAXLEN', '~', size, last .. '-0', 'p', payload, 't', now)
  else
    redis.call('XADD', hkey, 'MAXLEN', size, last .. '-0', 'p', payload, 't', now)
  end
  redis.call('HSET', hmeta, 'last', last)
  redis.call('PEXPIRE', hkey, ttl_ms)
  redis.call('PEXPIRE', hmeta, ttl_ms)
  return epoch, last
end

-- The kept messages after (since_epoch, since_offset) as {offset, payload} pairs, all or none.
local function history_recover(hkey, hmeta, ttl_ms, since_epoch, since_offset)
  local epoch, last = history_state(hkey, hmeta, ttl_ms)
  local out = {}
  if since_epoch == '' then return epoch, last, 1, out end
  local since = tonumber(since_offset)
  if since_epoch ~= epoch or since > last then return epoch, last, 0, out end
  if since == last then return epoch, last, 1, out end
  local entries = redis.call('XRANGE', hkey, (since + 1) .. '-0', '+')
  for i, e in ipairs(entries) do
    local offset = tonumber(string.match(e[1], '^(%d+)'))
    local payload, sent = '', 0
    for j = 1, #e[2], 2 do
      if e[2][j] == 'p' then payload = e[2][j + 1] elseif e[2][j] == 't' then sent = tonumber(e[2][j + 1]) end
    end
    -- The first one must be the one after `since`, and not older than the ttl.
    if i == 1 and (offset ~= since + 1 or sent < now - ttl_ms) then return epoch, last, 0, {} end
    out[#out + 1] = offset
    out[#out + 1] = payload
  end
  if #out == 0 then return epoch, last, 0, out end
  return epoch, last, 1, out
end
"""

_BODY_LINE = "local body = '\\n' .. ARGV[1]\n"


def _group_send_variant(before_body: str, body: str) -> str:
    """GROUP_SEND's source with `before_body` run just before its body line, and `body` instead of it."""
    head, line, tail = GROUP_SEND.source.partition(_BODY_LINE)
    if not line:  # GROUP_SEND changed shape: fail at import, not with a wrong script
        raise RuntimeError("GROUP_SEND no longer builds `body` as history.py expects")
    prelude, now_line, rest = head.partition(_NOW)
    return prelude + now_line + _STATE + rest + before_body + body + tail


# KEYS, ARGV and reply: GROUP_SEND's, with ARGV extended by size, ttl_ms, group name (taken off
# before the capacity rules are read).
HISTORY_SEND = Script(
    "history_send",
    _group_send_variant(
        """
local h_group = ARGV[#ARGV]
local h_ttl_ms = tonumber(ARGV[#ARGV - 1])
local h_size = ARGV[#ARGV - 2]
ARGV[#ARGV] = nil
ARGV[#ARGV] = nil
ARGV[#ARGV] = nil
local h_epoch, h_last = history_append(gkey .. '#h', gkey .. '#hm', ARGV[1], h_size, h_ttl_ms)
""",
        "local body = '|' .. h_group .. '|' .. h_epoch .. '|' .. h_last .. '\\n' .. ARGV[1]\n",
    ),
)

# KEYS, ARGV and reply: GROUP_SEND's, with ARGV extended by the position mark "|GROUP|EPOCH|OFFSET".
GROUP_SEND_MARKED = Script(
    "group_send_marked",
    _group_send_variant(
        """
local h_mark = ARGV[#ARGV]
ARGV[#ARGV] = nil
""",
        "local body = h_mark .. '\\n' .. ARGV[1]\n",
    ),
)

# KEYS: the group on its home shard.  ARGV: payload, size, ttl_ms  -> {epoch, offset}
HISTORY_APPEND = Script(
    "history_append",
    _NOW
    + _STATE
    + """
redis.call('EXISTS', KEYS[1] .. '#h', KEYS[1] .. '#hm')  -- see TOUCH_FIRST in scripts.py
local epoch, last = history_append(KEYS[1] .. '#h', KEYS[1] .. '#hm', ARGV[1], ARGV[2], tonumber(ARGV[3]))
return {epoch, last}
""",
)

# KEYS: the group on its home shard.  ARGV: since epoch ('' = latest), since offset, ttl_ms
# -> {epoch, last, recovered (1/0), offset, payload, offset, payload, ...}
HISTORY_READ = Script(
    "history_read",
    _NOW
    + _STATE
    + """
redis.call('EXISTS', KEYS[1] .. '#h', KEYS[1] .. '#hm')  -- see TOUCH_FIRST in scripts.py
local g = KEYS[1]
local epoch, last, recovered, out = history_recover(g .. '#h', g .. '#hm', tonumber(ARGV[3]), ARGV[1], ARGV[2])
local reply = {epoch, last, recovered}
for _, x in ipairs(out) do reply[#reply + 1] = x end
return reply
""",
)

_PUSH = """
local function push_replay(queue, lp, group, epoch, last, recovered, expiry_ms, queue_ttl, pairs, first)
  local head = string.format('%014d', now + tonumber(expiry_ms)) .. lp .. '|' .. group .. '|' .. epoch .. '|'
  local batch = {}
  for i = first, #pairs, 2 do
    batch[#batch + 1] = head .. pairs[i] .. '\\n' .. pairs[i + 1]
    if #batch == 1000 then
      redis.call('RPUSH', queue, unpack(batch))
      batch = {}
    end
  end
  batch[#batch + 1] = head .. last .. '|' .. (tonumber(recovered) == 1 and 'r' or 'n') .. '\\n'
  redis.call('RPUSH', queue, unpack(batch))
  redis.call('EXPIRE', queue, queue_ttl)
end
"""

# KEYS: the member's queue.  ARGV: local part, group, epoch, last, recovered (1/0), expiry_ms,
# queue_ttl_s, then offset, payload pairs  -> the number replayed
REPLAY_PUSH = Script(
    "replay_push",
    _NOW
    + _PUSH
    + """
push_replay(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV, 8)
return (#ARGV - 7) / 2
""",
)

# KEYS: group.  ARGV: queue name, local part, group_expiry_s, group name, since epoch ('' = latest),
# since offset, key prefix, expiry_ms, queue_ttl_s, history ttl_ms  -> {epoch, last, recovered, replayed}
HISTORY_JOIN = Script(
    "history_join",
    _NOW
    + _STATE
    + _PUSH
    + """
local g = KEYS[1]
local qname, lp = ARGV[1], ARGV[2]
local queue = ARGV[7] .. qname
redis.call('EXISTS', g, g .. ':', g .. '#', g .. ':' .. qname, g .. '#h', g .. '#hm', queue)  -- see TOUCH_FIRST
-- The join, as GROUP_ADD does it without an index (one shard).
local now_s = now / 1000
redis.call('ZADD', g, now_s, qname)
redis.call('EXPIRE', g, ARGV[3])
if string.sub(qname, -1) == '!' then
  local sub = g .. ':' .. qname
  if redis.call('ZADD', sub, now_s, lp) == 1 then redis.call('HDEL', g .. ':', qname) end
  redis.call('EXPIRE', sub, ARGV[3])
end
local gen = tonumber(redis.call('GET', g .. '#') or '0') + 1
redis.call('SET', g .. '#', string.format('%.0f', gen), 'EX', ARGV[3])
-- What it missed, then the status.
local epoch, last, recovered, pairs = history_recover(g .. '#h', g .. '#hm', tonumber(ARGV[10]), ARGV[5], ARGV[6])
push_replay(queue, lp, ARGV[4], epoch, last, recovered, ARGV[8], ARGV[9], pairs, 1)
return {epoch, last, recovered, #pairs / 2}
""",
)

UNLOCK = Script(
    "history_unlock",
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""",
)


def _capacity_rules(layer: RedisChannelLayer, shard: Any, group_key: bytes) -> list[Any]:
    if layer.capacity_rules.has_regex_rules:
        return layer._exact_capacity_rules(shard, group_key) + layer._lua_capacity
    return layer._lua_capacity


def _send_args(layer: RedisChannelLayer, shard: Any, group: str, payload: bytes) -> tuple[list[bytes], tuple]:
    """GROUP_SEND's keys and arguments on `shard`, without the group index."""
    keys = [layer.keys.group_key(group, shard.index)]
    if layer.statistics_enabled:
        keys.append(layer.keys.global_stats_key(shard.index))
    prefix = layer.keys.shard_prefix(shard.index)
    rules = _capacity_rules(layer, shard, keys[0])
    return keys, (payload, layer._expiry_ms, layer._group_ttl, layer._queue_ttl, prefix, layer.capacity, b"", *rules)


def send(layer: RedisChannelLayer, group: str, rule: HistoryRule, payload: bytes) -> tuple[int, int]:
    """Keep `payload` in `group`'s history and deliver it with its position: (members full, members evicted)."""
    ttl_ms = int(rule.ttl * 1000)
    if len(layer.shards) == 1:
        keys, args = _send_args(layer, layer.shards[0], group, payload)
        reply = layer.shards[0].evalsha(HISTORY_SEND, keys, (*args, rule.size, ttl_ms, group))
        return reply[1], reply[2]
    home, hkey = _home(layer, group)
    with _Lock(layer, home, hkey):
        epoch, offset = home.evalsha(HISTORY_APPEND, [hkey], (payload, rule.size, ttl_ms))
        mark = b"|" + group.encode("ascii") + b"|" + _bytes(epoch) + b"|" + str(offset).encode("ascii")
        calls = []
        for shard in layer.shards:
            keys, args = _send_args(layer, shard, group, payload)
            calls.append((shard, keys, (*args, mark)))
        replies = layer._evalsha_each(GROUP_SEND_MARKED, calls)
    return sum(r[1] for r in replies), sum(r[2] for r in replies)


def join(layer: RedisChannelLayer, group: str, channel: str, rule: HistoryRule, since: Position | str) -> Any:
    """Add `channel` to `group` and queue what it missed after `since`, then the status: one atomic step."""
    qname, local = split(channel)
    epoch, offset = ("", 0) if since == LATEST else (since.epoch, since.offset)  # type: ignore[union-attr]
    ttl_ms = int(rule.ttl * 1000)
    if len(layer.shards) == 1:
        args = (qname, local, layer._group_ttl, group, epoch, offset, layer.keys.shard_prefix(0))
        args += (layer._expiry_ms, layer._queue_ttl, ttl_ms)
        return layer.shards[0].evalsha(HISTORY_JOIN, [layer.keys.group_key(group, 0)], args)
    home, hkey = _home(layer, group)
    with _Lock(layer, home, hkey):
        group_index.add(layer, group, qname, local)
        found = home.evalsha(HISTORY_READ, [hkey], (epoch, offset, ttl_ms))
        cur_epoch, last, recovered, pairs = found[0], found[1], found[2], found[3:]
        target = layer.keys.send_target(qname)
        args = (local, group, cur_epoch, last, recovered, layer._expiry_ms, layer._queue_ttl, *pairs)
        layer.shards[target.shard].evalsha(REPLAY_PUSH, [target.keys[0]], args)
    return [cur_epoch, last, recovered, len(pairs) // 2]


def _home(layer: RedisChannelLayer, group: str) -> tuple[Any, bytes]:
    """The shard holding `group`'s history, and the group's key there (the history keys hang off it)."""
    index = layer.ring.get("group:" + group)  # group_index's home: the index and the history share a shard
    return layer.shards[index], layer.keys.group_key(group, index)


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("ascii")


class _Lock:
    """The group's history lock on its home shard, for one send or join (several shards only)."""

    def __init__(self, layer: RedisChannelLayer, home: Any, group_key: bytes) -> None:
        self.home = home
        self.key = group_key + b"#hl"
        self.token = secrets.token_hex(8)

    def __enter__(self) -> _Lock:
        deadline = time.monotonic() + LOCK_WAIT
        pause = 0.0005
        while not self.home.execute("SET", self.key, self.token, "NX", "PX", LOCK_MS):
            if time.monotonic() > deadline:
                raise LayerConnectionError(f"the history lock {self.key!r} stayed taken for {LOCK_WAIT} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.home.evalsha(UNLOCK, [self.key], (self.token,))
