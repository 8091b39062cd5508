"""Group history on Redis: a stream per group, positions stamped inside the send script, atomic resume.

Keys, next to the group's member set `G` (so on one shard, in one slot):

    G#h    a stream of the group's messages: id "OFFSET-0", fields p (payload) and t (ms sent);
           XADD ... MAXLEN (~ from 1,000 entries up) keeps it bounded
    G#hm   a hash: epoch, last (the last offset given)

Both expire `ttl` seconds after the last send. The epoch is made from the
server's TIME when the script finds the history lost (never kept, flushed,
Redis restarted without its data, expired): positions of an older epoch
cannot be resumed from and get `recovered: false`.

HISTORY_SEND is GROUP_SEND (see `scripts.py`) with the append in front of
the delivery: one script gives the message its offset, keeps it and pushes
it to every member, so members of one queue see offsets in order and a join
sees each message either in the stream or live. The position travels in the
element's framing, after the targets (`targets|GROUP|EPOCH|OFFSET\\n`, see
`framing`), and the decoder wraps the text (`channels_core.layers.history`):
one push per interface server still serves all its sockets.

HISTORY_JOIN adds a member exactly as GROUP_ADD does and, in the same script,
pushes into its queue the kept messages after `since`, then a status element
(`...|OFFSET|r` recovered, `|n` not) that the decoder turns into the status
frame.

One shard only: on client-side shards and Redis Cluster a group's members
live on several shards, and one script cannot order a message against all of
them; `history_join` and a send to a history group raise HistoryNotSupported
there (docs/topics/history.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..history import LATEST, HistoryNotSupported, HistoryRule, Position
from .keys import split
from .scripts import _NOW, GROUP_SEND, Script

if TYPE_CHECKING:
    from .layer import RedisChannelLayer

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
"""

_APPEND = """
-- The history arguments are the last three; take them off before the capacity rules are read.
local h_group = ARGV[#ARGV]
local h_ttl_ms = tonumber(ARGV[#ARGV - 1])
local h_size = ARGV[#ARGV - 2]
ARGV[#ARGV] = nil
ARGV[#ARGV] = nil
ARGV[#ARGV] = nil
local hkey = gkey .. '#h'
local hmeta = gkey .. '#hm'
local h_epoch, h_last = history_state(hkey, hmeta, h_ttl_ms)
h_last = h_last + 1
if tonumber(h_size) >= 1000 then
  redis.call('XADD', hkey, 'MAXLEN', '~', h_size, h_last .. '-0', 'p', ARGV[1], 't', now)
else
  redis.call('XADD', hkey, 'MAXLEN', h_size, h_last .. '-0', 'p', ARGV[1], 't', now)
end
redis.call('HSET', hmeta, 'last', h_last)
redis.call('PEXPIRE', hkey, h_ttl_ms)
redis.call('PEXPIRE', hmeta, h_ttl_ms)
local hist_mark = '|' .. h_group .. '|' .. h_epoch .. '|' .. h_last
"""

_BODY_LINE = "local body = '\\n' .. ARGV[1]\n"


def _history_send_source() -> str:
    head, line, tail = GROUP_SEND.source.partition(_BODY_LINE)
    if not line:  # GROUP_SEND changed shape: fail at import, not with a wrong script
        raise RuntimeError("GROUP_SEND no longer builds `body` as history.py expects")
    prelude, now_line, rest = head.partition(_NOW)
    return prelude + now_line + _STATE + rest + _APPEND + "local body = hist_mark .. '\\n' .. ARGV[1]\n" + tail


# KEYS, ARGV and reply: GROUP_SEND's, with ARGV extended by size, ttl_ms, group name.
HISTORY_SEND = Script("history_send", _history_send_source())

# KEYS: group.  ARGV: queue name, local part, group_expiry_s, group name, since epoch ('' = latest),
# since offset, key prefix, expiry_ms, queue_ttl_s, history ttl_ms  -> {epoch, last, recovered, replayed}
HISTORY_JOIN = Script(
    "history_join",
    _NOW
    + _STATE
    + """
local g = KEYS[1]
local qname, lp, group = ARGV[1], ARGV[2], ARGV[4]
local hkey, hmeta = g .. '#h', g .. '#hm'
local queue = ARGV[7] .. qname
redis.call('EXISTS', g, g .. ':', g .. '#', g .. ':' .. qname, hkey, hmeta, queue)  -- see TOUCH_FIRST
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
-- What it missed.
local ttl_ms = tonumber(ARGV[10])
local epoch, last = history_state(hkey, hmeta, ttl_ms)
local recovered = 1
local entries = {}
if ARGV[5] ~= '' then
  local since = tonumber(ARGV[6])
  if ARGV[5] ~= epoch or since > last then
    recovered = 0
  elseif since < last then
    entries = redis.call('XRANGE', hkey, (since + 1) .. '-0', '+')
    local first = entries[1]
    if not first or tonumber(string.match(first[1], '^(%d+)')) ~= since + 1 then
      recovered = 0
    else
      local fields = first[2]
      for i = 1, #fields, 2 do
        if fields[i] == 't' and tonumber(fields[i + 1]) < now - ttl_ms then recovered = 0 end
      end
    end
    if recovered == 0 then entries = {} end
  end
end
local stamp = string.format('%014d', now + tonumber(ARGV[8]))
local head = stamp .. lp .. '|' .. group .. '|' .. epoch .. '|'
local batch = {}
for _, e in ipairs(entries) do
  local fields = e[2]
  local payload = ''
  for i = 1, #fields, 2 do
    if fields[i] == 'p' then payload = fields[i + 1] end
  end
  batch[#batch + 1] = head .. string.match(e[1], '^(%d+)') .. '\\n' .. payload
  if #batch == 1000 then
    redis.call('RPUSH', queue, unpack(batch))
    batch = {}
  end
end
batch[#batch + 1] = head .. last .. '|' .. (recovered == 1 and 'r' or 'n') .. '\\n'
redis.call('RPUSH', queue, unpack(batch))
redis.call('EXPIRE', queue, ARGV[9])
return {epoch, last, recovered, #entries}
""",
)


def one_shard(layer: RedisChannelLayer, group: str) -> None:
    if len(layer.shards) > 1:
        raise HistoryNotSupported(
            f"group {group!r} keeps history, which needs the Redis layer on one server (not client-side "
            "shards or Redis Cluster): one script must order each message against every member"
        )


def send(layer: RedisChannelLayer, group: str, rule: HistoryRule, payload: bytes) -> tuple[int, int]:
    """HISTORY_SEND on the one shard: (members skipped because full, members evicted)."""
    one_shard(layer, group)
    shard = layer.shards[0]
    keys = [layer.keys.group_key(group, 0)]
    if layer.statistics_enabled:
        keys.append(layer.keys.global_stats_key(0))
    rules = layer._lua_capacity
    if layer.capacity_rules.has_regex_rules:
        rules = layer._exact_capacity_rules(shard, keys[0]) + rules
    args = (
        payload,
        layer._expiry_ms,
        layer._group_ttl,
        layer._queue_ttl,
        layer.keys.shard_prefix(0),
        layer.capacity,
        b"",
        *rules,
        rule.size,
        int(rule.ttl * 1000),
        group,
    )
    reply = shard.evalsha(HISTORY_SEND, keys, args)
    return reply[1], reply[2]


def join(layer: RedisChannelLayer, group: str, channel: str, rule: HistoryRule, since: Position | str) -> Any:
    """HISTORY_JOIN: the join and the replay after `since` in one script; its reply (epoch, last, recovered, n)."""
    one_shard(layer, group)
    qname, local = split(channel)
    epoch, offset = ("", 0) if since == LATEST else (since.epoch, since.offset)  # type: ignore[union-attr]
    args = (
        qname,
        local,
        layer._group_ttl,
        group,
        epoch,
        offset,
        layer.keys.shard_prefix(0),
        layer._expiry_ms,
        layer._queue_ttl,
        int(rule.ttl * 1000),
    )
    return layer.shards[0].evalsha(HISTORY_JOIN, [layer.keys.group_key(group, 0)], args)
