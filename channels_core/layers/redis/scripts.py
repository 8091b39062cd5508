"""The Lua scripts that make each layer operation one atomic round trip.

Every script takes the time from the Redis server (`TIME`), so expiry never
depends on the clocks of the machines that send and receive.
"""

from __future__ import annotations

import hashlib


class Script:
    """A Lua script and its SHA1, loaded on first NOSCRIPT."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf8")).hexdigest()


_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_PURGE = """
local function purge(key, now)
  local n = 0
  while true do
    local head = redis.call('LINDEX', key, 0)
    if not head then return n end
    -- an element this layer did not write counts as expired
    local deadline = tonumber(string.sub(head, 1, 14))
    if deadline and deadline > now then return n end
    redis.call('LPOP', key)
    n = n + 1
  end
end
"""

# KEYS: queue [, channel stats, global stats]
# ARGV: expiry_ms, capacity, queue_ttl_s, tail...  -> count sent, or -1 - waiting when full
SEND = Script(
    "send",
    _NOW
    + _PURGE
    + """
local key = KEYS[1]
local n = #ARGV - 3
local waiting = redis.call('LLEN', key)
if waiting + n > tonumber(ARGV[2]) then
  waiting = waiting - purge(key, now)
  if waiting + n > tonumber(ARGV[2]) then
    if KEYS[2] then
      redis.call('HINCRBY', KEYS[2], 'channel_full_count', 1)
      redis.call('EXPIRE', KEYS[2], 3600)
      redis.call('HINCRBY', KEYS[3], 'channel_full_count', 1)
      redis.call('EXPIRE', KEYS[3], 86400)
    end
    return -1 - waiting
  end
end
local stamp = string.format('%014d', now + tonumber(ARGV[1]))
local batch = {}
for i = 4, #ARGV do
  batch[#batch + 1] = stamp .. ARGV[i]
  if #batch == 1000 then
    redis.call('RPUSH', key, unpack(batch))
    batch = {}
  end
end
if #batch > 0 then redis.call('RPUSH', key, unpack(batch)) end
redis.call('EXPIRE', key, ARGV[3])
if KEYS[2] then
  redis.call('HINCRBY', KEYS[2], 'messages_count', n)
  redis.call('EXPIRE', KEYS[2], 3600)
  redis.call('HINCRBY', KEYS[3], 'messages_count', n)
  redis.call('EXPIRE', KEYS[3], 86400)
end
return n
""",
)

# KEYS: queues to pop from, in the order to try them.  ARGV: max messages.
# -> flat list of (index into KEYS, element); expired elements are dropped.
POP = Script(
    "pop",
    _NOW
    + """
local max = tonumber(ARGV[1])
local out = {}
local got = 0
for i = 1, #KEYS do
  while got < max do
    local e = redis.call('LPOP', KEYS[i])
    if not e then break end
    local deadline = tonumber(string.sub(e, 1, 14))
    -- unreadable elements go to the client, which logs and drops them
    if not deadline or deadline > now then
      out[#out + 1] = i
      out[#out + 1] = e
      got = got + 1
    end
  end
  if got >= max then break end
end
return out
""",
)

# KEYS: group.  ARGV: member, group_expiry_s
GROUP_ADD = Script(
    "group_add",
    """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(t[1]) + tonumber(t[2]) / 1000000, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
""",
)

# KEYS: group.  ARGV: group_expiry_s  -> live members
GROUP_CHANNELS = Script(
    "group_channels",
    """
local t = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(t[1]) - tonumber(ARGV[1]))
return redis.call('ZRANGE', KEYS[1], 0, -1)
""",
)

# KEYS: group [, global stats]
# ARGV: payload, expiry_ms, group_expiry_s, queue_ttl_s, key prefix, default capacity,
#       then (Lua pattern, capacity) pairs, first match wins.
# -> {members reached, members dropped because full, members evicted}
#
# Members are grouped by queue: all the sockets of one process ("prefix!")
# get ONE element naming their local parts, which that process fans out.
# A queue whose head expired unread has no reader: its members are evicted.
GROUP_SEND = Script(
    "group_send",
    _NOW
    + _PURGE
    + """
local gkey = KEYS[1]
redis.call('ZREMRANGEBYSCORE', gkey, '-inf', now / 1000 - tonumber(ARGV[3]))
local members = redis.call('ZRANGE', gkey, 0, -1)
if #members == 0 then return {0, 0, 0} end
local default_capacity = tonumber(ARGV[6])
local function capacity(name)
  for i = 7, #ARGV, 2 do
    if string.find(name, ARGV[i]) then return tonumber(ARGV[i + 1]) end
  end
  return default_capacity
end
local queues, order = {}, {}
for _, m in ipairs(members) do
  local bang = string.find(m, '!', 1, true)
  local qname = m
  if bang then qname = string.sub(m, 1, bang) end
  local q = queues[qname]
  if not q then
    q = {members = {}, locals = {}}
    queues[qname] = q
    order[#order + 1] = qname
  end
  q.members[#q.members + 1] = m
  if bang then q.locals[#q.locals + 1] = string.sub(m, bang + 1) end
end
local stamp = string.format('%014d', now + tonumber(ARGV[2]))
local body = '\\n' .. ARGV[1]
local prefix = ARGV[5]
local sent, full, evicted = 0, 0, 0
for _, qname in ipairs(order) do
  local q = queues[qname]
  local key = prefix .. qname
  local head = redis.call('LINDEX', key, 0)
  local deadline = head and tonumber(string.sub(head, 1, 14))
  if deadline and deadline <= now then
    purge(key, now)
    for i = 1, #q.members, 1000 do
      redis.call('ZREM', gkey, unpack(q.members, i, math.min(i + 999, #q.members)))
    end
    evicted = evicted + #q.members
  elseif redis.call('LLEN', key) >= capacity(qname) then
    full = full + #q.members
  else
    redis.call('RPUSH', key, stamp .. table.concat(q.locals, ',') .. body)
    redis.call('EXPIRE', key, ARGV[4])
    sent = sent + #q.members
  end
end
if KEYS[2] then
  redis.call('HINCRBY', KEYS[2], 'messages_count', sent)
  if full > 0 then redis.call('HINCRBY', KEYS[2], 'channel_full_count', full) end
  redis.call('EXPIRE', KEYS[2], 86400)
end
return {sent, full, evicted}
""",
)

ALL_SCRIPTS = [SEND, POP, GROUP_ADD, GROUP_CHANNELS, GROUP_SEND]
