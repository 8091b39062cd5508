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

# TOUCH_FIRST: a script that touches keys it does not declare (a group's side keys, member
# queues, a dead holder's connections) first reads all of them with a multi-key EXISTS, before
# any write. On Redis Cluster, while the slot is being migrated, a key that is not on this node
# then stops the script with nothing written ("non local key", or TRYAGAIN on the importing
# node: a multi-key command with a key missing there), and the layer runs it again once the
# slot has settled. Single-key reads would not do: the importing node serves a missing key as
# absent, and the script would write a second copy of a key the old master still holds.

# Groups are stored per shard as a sorted set of queue names (score: the
# latest add), plus, for each process queue "server!", a sorted set of the
# local parts of its member channels at KEYS[1] .. ":" .. "server!", and a
# hash at KEYS[1] .. ":" caching each process queue's comma-joined local
# parts (dropped whenever that membership changes). A group send then touches
# each queue once and does no per-member work, whatever the number of sockets
# behind it.
_NOW_S = """
local t = redis.call('TIME')
local now_s = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# Group indexes (see group_index.py).
STALE_BUILD_MS = 30_000  # a build mark older than this is taken over by the next add (its builder died)

_NOW_US = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# Shared by GROUP_ADD and INDEX_PUT: raise `field` to `gen` (never lower it); create the
# index marked "being built" (field '*', the time in ms) when absent and `create` is '1'.
# A shard that joins (its field was absent) raises the index's version ('#v'): the caller
# then writes that version on every listed shard, so a sender that cached the older list
# notices when it next runs its script on any of them (see group_index.py).
# -> {state, build mark, version ('' unless a shard joined), the listed shards' fields}
INDEX_PUT_LUA = """
local function listed_fields(ix)
  local out = {}
  for _, f in ipairs(redis.call('HKEYS', ix)) do
    if string.sub(f, 1, 1) ~= '#' and f ~= '*' then out[#out + 1] = f end
  end
  return out
end
local function index_put(ix, field, gen, ttl, create, now_us)
  local now_ms = string.format('%.0f', math.floor(now_us / 1000))
  if redis.call('EXISTS', ix) == 0 then
    if create ~= '1' then return {3, '', '', {}} end
    -- Versions start at the time in microseconds, so a sender that remembers a version of an
    -- index that expired never mistakes a later index's for it.
    redis.call('HSET', ix, '#', '1', '#v', string.format('%.0f', now_us), '*', now_ms, field, gen)
    redis.call('EXPIRE', ix, ttl)
    return {2, now_ms, '', {}}
  end
  local cur = redis.call('HGET', ix, field)
  local version, listed = '', {}
  if not cur then
    version = string.format('%.0f', redis.call('HINCRBY', ix, '#v', 1))
    redis.call('HSET', ix, field, gen)
    listed = listed_fields(ix)
  elseif tonumber(cur) < tonumber(gen) then
    redis.call('HSET', ix, field, gen)
  end
  redis.call('EXPIRE', ix, ttl)
  local mark = redis.call('HGET', ix, '*')
  if mark and create == '1' and tonumber(now_ms) - tonumber(mark) > STALE_BUILD_MS then
    redis.call('HSET', ix, '*', now_ms)
    return {2, now_ms, version, listed}
  end
  return {1, '', version, listed}
end
""".replace("STALE_BUILD_MS", str(STALE_BUILD_MS))

# Shared by GROUP_DISCARD and GROUP_SEND: drop `field` unless an add raised it past `gen`.
INDEX_DROP_LUA = """
local function index_drop(ix, field, gen)
  local cur = redis.call('HGET', ix, field)
  if cur and tonumber(cur) <= tonumber(gen) then redis.call('HDEL', ix, field) end
end
"""

# This shard's generation for a group whose part here is empty: its counter, or (counter
# expired) the time in microseconds, which every later add exceeds.
EMPTY_GEN_LUA = """
local function empty_gen(gkey, now_us)
  return redis.call('GET', gkey .. '#') or string.format('%.0f', now_us)
end
"""

# KEYS: index.  ARGV: field, generation, ttl_s, create ('1'/'0')  -> see index_put
INDEX_PUT = Script(
    "index_put",
    _NOW_US + INDEX_PUT_LUA + "return index_put(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], now_us)\n",
)

# KEYS: index.  ARGV: (field, generation) pairs  -> 1
INDEX_DROP = Script(
    "index_drop",
    INDEX_DROP_LUA + "for i = 1, #ARGV, 2 do index_drop(KEYS[1], ARGV[i], ARGV[i + 1]) end\nreturn 1\n",
)

# KEYS: group.  ARGV: group_expiry_s  -> this shard's generation if it holds members, else false.
# Members added without an index (an older release) have no counter yet: it is created.
GROUP_GEN = Script(
    "group_gen",
    _NOW_US
    + """
if redis.call('EXISTS', KEYS[1], KEYS[1] .. '#') == 0 then return false end  -- see TOUCH_FIRST
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local gen = redis.call('GET', KEYS[1] .. '#')
if not gen then
  gen = string.format('%.0f', now_us + 1)
  redis.call('SET', KEYS[1] .. '#', gen, 'EX', ARGV[1])
end
return gen
""",
)

# KEYS: index.  ARGV: build mark, ttl_s, then (field, generation) pairs
# -> {version, the listed shards' fields}: merges what the build found, clears the mark if it
# is still this build's and raises the version (the caller writes it on the listed shards).
INDEX_FINISH = Script(
    "index_finish",
    INDEX_PUT_LUA
    + """
for i = 3, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if cur < tonumber(ARGV[i + 1]) then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
if redis.call('HGET', KEYS[1], '*') == ARGV[1] then redis.call('HDEL', KEYS[1], '*') end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'', {}} end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {string.format('%.0f', redis.call('HINCRBY', KEYS[1], '#v', 1)), listed_fields(KEYS[1])}
""",
)

# KEYS: group (this shard's part).  ARGV: version, ttl_s  -> 1
# This shard's copy of the group index's version (`<group key>#v`), only ever raised.
VERSION_SET = Script(
    "version_set",
    """
local key = KEYS[1] .. '#v'
redis.call('EXISTS', KEYS[1], key)  -- see TOUCH_FIRST
if tonumber(redis.call('GET', key) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', key, ARGV[2])
end
return 1
""",
)

INDEX_SCRIPTS = [INDEX_PUT, INDEX_DROP, GROUP_GEN, INDEX_FINISH, VERSION_SET]

# KEYS: group [, the group's index when it lives on this shard]
# ARGV: queue name, local part, group_expiry_s [, index field, create ('1'/'0')]
# -> {generation, index state, build mark, version, listed fields}: every add raises this
# shard's generation of the group (see group_index.py), kept as long as the group; with the
# index key the script also raises the index's entry (index_put's reply), else state 0.
GROUP_ADD = Script(
    "group_add",
    _NOW_US
    + INDEX_PUT_LUA
    + """
local g = KEYS[1]
redis.call('EXISTS', g, g .. ':', g .. '#', g .. '#v', g .. ':' .. ARGV[1])  -- see TOUCH_FIRST
local now_s = now_us / 1000000
redis.call('ZADD', KEYS[1], now_s, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if string.sub(ARGV[1], -1) == '!' then
  local sub = KEYS[1] .. ':' .. ARGV[1]
  if redis.call('ZADD', sub, now_s, ARGV[2]) == 1 then
    redis.call('HDEL', KEYS[1] .. ':', ARGV[1])
  end
  redis.call('EXPIRE', sub, ARGV[3])
end
local gen = tonumber(redis.call('GET', KEYS[1] .. '#') or '0') + 1
if gen <= now_us then gen = now_us + 1 end
gen = string.format('%.0f', gen)
redis.call('SET', KEYS[1] .. '#', gen, 'EX', ARGV[3])
redis.call('EXPIRE', KEYS[1] .. '#v', ARGV[3])
if KEYS[2] then
  local put = index_put(KEYS[2], ARGV[4], gen, ARGV[3], ARGV[5], now_us)
  return {gen, put[1], put[2], put[3], put[4]}
end
return {gen, 0, '', '', {}}
""",
)

# KEYS: group [, the group's index when it lives on this shard].  ARGV: queue name, local part [, index field]
# -> '' while this shard still holds members of the group, else its generation (to
# compare-and-delete its index entry with; done here when the index key is given)
GROUP_DISCARD = Script(
    "group_discard",
    _NOW_US
    + INDEX_DROP_LUA
    + EMPTY_GEN_LUA
    + """
-- see TOUCH_FIRST
redis.call('EXISTS', KEYS[1], KEYS[1] .. ':', KEYS[1] .. '#', KEYS[1] .. '#v', KEYS[1] .. ':' .. ARGV[1])
if string.sub(ARGV[1], -1) == '!' then
  local sub = KEYS[1] .. ':' .. ARGV[1]
  redis.call('ZREM', sub, ARGV[2])
  redis.call('HDEL', KEYS[1] .. ':', ARGV[1])
  if redis.call('ZCARD', sub) > 0 then return '' end
end
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then return '' end
local gen = empty_gen(KEYS[1], now_us)
-- This shard's copy of the index version goes with its members: a sender that finds members
-- here again before the add that put them there has joined the index must not trust it.
redis.call('DEL', KEYS[1] .. '#v')
if KEYS[2] then index_drop(KEYS[2], ARGV[3], gen) end
return gen
""",
)

# KEYS: group.  ARGV: group_expiry_s  -> live member channel names
GROUP_CHANNELS = Script(
    "group_channels",
    _NOW_S
    + """
local cutoff = now_s - tonumber(ARGV[1])
for _, q in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do  -- see TOUCH_FIRST
  redis.call('EXISTS', KEYS[1], KEYS[1] .. ':', KEYS[1] .. ':' .. q)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
local out = {}
for _, q in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(q, -1) == '!' then
    local sub = KEYS[1] .. ':' .. q
    if redis.call('ZREMRANGEBYSCORE', sub, '-inf', cutoff) > 0 then
      redis.call('HDEL', KEYS[1] .. ':', q)
    end
    for _, l in ipairs(redis.call('ZRANGE', sub, 0, -1)) do out[#out + 1] = q .. l end
  else
    out[#out + 1] = q
  end
end
return out
""",
)

# KEYS: group [, global stats] [, the group's index when it lives on this shard]
# ARGV: payload, expiry_ms, group_expiry_s, queue_ttl_s, key prefix, default capacity,
#       index field ('' when KEYS holds no index), then (Lua pattern, capacity) pairs,
#       first match wins.
# -> {members reached, members dropped because full, members evicted, generation, index,
#     version}
#    generation: '' while this shard holds members of the group, else its generation
#    (see group_index.py; with the index key the entry is compare-and-deleted here);
#    index: 0 without an index key, or when the index is absent or being built, else
#    its (field, value) pairs; version: this shard's copy of the index's version, or ''.
#
# All the sockets of one process ("server!") get ONE element naming their
# local parts, which that process fans out. A queue whose head expired
# unread has no reader: its members are evicted.
GROUP_SEND = Script(
    "group_send",
    _NOW
    + _PURGE
    + INDEX_DROP_LUA
    + EMPTY_GEN_LUA
    + """
local gkey = KEYS[1]
local cache = gkey .. ':'
local ixfield = ARGV[7]
local ixkey = nil
if ixfield ~= '' then ixkey = KEYS[#KEYS] end
local stats = nil
if #KEYS >= (ixkey and 3 or 2) then stats = KEYS[2] end
local version = redis.call('GET', gkey .. '#v') or ''
local cutoff = now / 1000 - tonumber(ARGV[3])
local prefix = ARGV[5]
-- Touch every key this send may write before writing any (see TOUCH_FIRST).
redis.call('EXISTS', gkey, cache, gkey .. '#', gkey .. '#v')
for _, qname in ipairs(redis.call('ZRANGE', gkey, 0, -1)) do
  redis.call('EXISTS', prefix .. qname, gkey .. ':' .. qname, cache, gkey .. '#')
end
redis.call('ZREMRANGEBYSCORE', gkey, '-inf', cutoff)
local queues = redis.call('ZRANGE', gkey, 0, -1)
local default_capacity = tonumber(ARGV[6])
local function capacity(name)
  for i = 8, #ARGV, 2 do
    if string.find(name, ARGV[i]) then return tonumber(ARGV[i + 1]) end
  end
  return default_capacity
end
local stamp = string.format('%014d', now + tonumber(ARGV[2]))
local body = '\\n' .. ARGV[1]
local sent, full, evicted = 0, 0, 0
for _, qname in ipairs(queues) do
  local key = prefix .. qname
  local sub = nil
  local targets = ''
  local count = 1
  if string.sub(qname, -1) == '!' then
    sub = gkey .. ':' .. qname
    if redis.call('ZREMRANGEBYSCORE', sub, '-inf', cutoff) > 0 then
      redis.call('HDEL', cache, qname)
    end
    count = redis.call('ZCARD', sub)
    if count > 0 then
      targets = redis.call('HGET', cache, qname)
      if not targets then
        targets = table.concat(redis.call('ZRANGE', sub, 0, -1), ',')
        redis.call('HSET', cache, qname, targets)
        redis.call('EXPIRE', cache, ARGV[3])
      end
    end
  end
  if count == 0 then
    redis.call('ZREM', gkey, qname)
    redis.call('HDEL', cache, qname)
  else
    local waiting = redis.call('LLEN', key)
    local deadline = nil
    if waiting > 0 then
      deadline = tonumber(string.sub(redis.call('LINDEX', key, 0), 1, 14))
    end
    if deadline and deadline <= now then
      purge(key, now)
      redis.call('ZREM', gkey, qname)
      if sub then
        redis.call('DEL', sub)
        redis.call('HDEL', cache, qname)
      end
      evicted = evicted + count
    elseif waiting >= capacity(qname) then
      full = full + count
    else
      redis.call('RPUSH', key, stamp .. targets .. body)
      redis.call('EXPIRE', key, ARGV[4])
      sent = sent + count
    end
  end
end
if stats and #queues > 0 then
  redis.call('HINCRBY', stats, 'messages_count', sent)
  if full > 0 then redis.call('HINCRBY', stats, 'channel_full_count', full) end
  redis.call('EXPIRE', stats, 86400)
end
local gen = ''
if redis.call('EXISTS', gkey) == 0 then
  gen = empty_gen(gkey, tonumber(t[1]) * 1000000 + tonumber(t[2]))
  redis.call('DEL', gkey .. '#v')  -- as in GROUP_DISCARD
end
local index = 0
if ixkey then
  if gen ~= '' then index_drop(ixkey, ixfield, gen) end
  if redis.call('EXISTS', ixkey) == 1 and not redis.call('HGET', ixkey, '*') then
    index = redis.call('HGETALL', ixkey)
  end
end
return {sent, full, evicted, gen, index, version}
""",
)

ALL_SCRIPTS = [SEND, POP, GROUP_ADD, GROUP_DISCARD, GROUP_CHANNELS, GROUP_SEND, *INDEX_SCRIPTS]

# Per-connection ordering (see channels_core/layers/order_book.py for the state machine).
# The hash at KEYS[1] holds 'next', 'n' (messages parked), 'waiting' (ms since when
# parked messages have waited without next moving), 'dead', and 'm:<order>' -> payload.

# ARGV: order, payload, timeout_ms, max_parked, ttl_s  -> 'run' | 'parked' | 'stale' | 'stuck' | 'dead'
ORDER_CLAIM = Script(
    "order_claim",
    _NOW
    + """
local key = KEYS[1]
local order = tonumber(ARGV[1])
if redis.call('HEXISTS', key, 'dead') == 1 then return 'dead' end
local nxt = tonumber(redis.call('HGET', key, 'next') or '0')
if order < nxt or redis.call('HEXISTS', key, 'm:' .. order) == 1 then return 'stale' end
if order == nxt then
  redis.call('EXPIRE', key, ARGV[5])
  return 'run'
end
local waiting = tonumber(redis.call('HGET', key, 'waiting') or '-1')
local parked = tonumber(redis.call('HGET', key, 'n') or '0')
if (waiting >= 0 and now - waiting > tonumber(ARGV[3])) or parked >= tonumber(ARGV[4]) then
  redis.call('DEL', key)
  redis.call('HSET', key, 'dead', 1)
  redis.call('EXPIRE', key, ARGV[5])
  return 'stuck'
end
redis.call('HSET', key, 'm:' .. order, ARGV[2])
redis.call('HINCRBY', key, 'n', 1)
if waiting < 0 then redis.call('HSET', key, 'waiting', now) end
redis.call('EXPIRE', key, ARGV[5])
return 'parked'
""",
)

# ARGV: order, ttl_s  -> the parked payload that is now next (removed), or false
ORDER_ADVANCE = Script(
    "order_advance",
    _NOW
    + """
local key = KEYS[1]
if redis.call('HEXISTS', key, 'dead') == 1 then return false end
local nxt = tonumber(redis.call('HGET', key, 'next') or '0')
local done = tonumber(ARGV[1]) + 1
if done > nxt then nxt = done end
redis.call('HSET', key, 'next', nxt)
local field = 'm:' .. nxt
local payload = redis.call('HGET', key, field)
if payload then
  redis.call('HDEL', key, field)
  redis.call('HINCRBY', key, 'n', -1)
end
if payload or tonumber(redis.call('HGET', key, 'n') or '0') > 0 then
  redis.call('HSET', key, 'waiting', now)
else
  redis.call('HDEL', key, 'waiting')
end
redis.call('EXPIRE', key, ARGV[2])
return payload
""",
)

# -- leases (the `leases` extension, see leases.py) ----------------------------
# Per shard: a sorted set of holders scored by lease expiry (ms), a hash of their
# info, a sorted set of swept holders (tombstones, scored by sweep time, kept a
# day) and per holder a hash of its connections (reply channel -> channel "\n"
# disconnect payload). A sweep moves a dead holder's connections, with the order
# each disconnect must carry, into one "sweeping" hash; each is then pushed by
# SWEEP_SEND, which deletes it in the same step: a disconnect goes out once.

# KEYS: expiry zset, info hash, swept zset, the holder's connections
# ARGV: holder, ttl_ms, info, known ('1' if this client registered it before), conn_ttl_s
# -> 'held' | 'swept' | 'lost'
LEASE_RENEW = Script(
    "lease_renew",
    _NOW
    + """
local holder = ARGV[1]
local state = 'held'
if not redis.call('ZSCORE', KEYS[1], holder) then
  if redis.call('ZREM', KEYS[3], holder) == 1 then
    state = 'swept'
  elseif ARGV[4] == '1' then
    state = 'lost'
  end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), holder)
redis.call('HSET', KEYS[2], holder, ARGV[3])
redis.call('EXPIRE', KEYS[4], ARGV[5])
return state
""",
)

# KEYS: the holder's connections [, the disconnect's queue when it lives on this shard]
# ARGV: reply channel, expiry_ms, queue_ttl_s, unstamped element  -> 1 if it was tracked (and pushed)
LEASE_RELEASE = Script(
    "lease_release",
    _NOW
    + """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if KEYS[2] then
  redis.call('RPUSH', KEYS[2], string.format('%014d', now + tonumber(ARGV[2])) .. ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return 1
""",
)

# KEYS: expiry zset, info hash, swept zset, sweeping hash
# ARGV: key prefix, max holders  -> the holders swept
LEASE_SWEEP = Script(
    "lease_sweep",
    _NOW
    + """
local prefix = ARGV[1]
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, holder in ipairs(dead) do  -- see TOUCH_FIRST
  local ckey = prefix .. 'lease:conn:' .. holder
  redis.call('EXISTS', ckey, KEYS[4])
  for i, field in ipairs(redis.call('HKEYS', ckey)) do
    redis.call('EXISTS', prefix .. 'order:' .. field, KEYS[4])
  end
end
for _, holder in ipairs(dead) do
  local ckey = prefix .. 'lease:conn:' .. holder
  local entries = redis.call('HGETALL', ckey)
  for i = 1, #entries, 2 do
    local reply_channel = entries[i]
    -- the order an ordered consumer waits for next (0 before the connect ran)
    local order = redis.call('HGET', prefix .. 'order:' .. reply_channel, 'next') or '0'
    redis.call('HSET', KEYS[4], holder .. '\\n' .. reply_channel, order .. '\\n' .. entries[i + 1])
  end
  redis.call('DEL', ckey)
  redis.call('ZREM', KEYS[1], holder)
  redis.call('HDEL', KEYS[2], holder)
  redis.call('ZADD', KEYS[3], now, holder)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 86400000)
return dead
""",
)

# KEYS: sweeping hash [, the queue when it lives on this shard]
# ARGV: expiry_ms, queue_ttl_s, then (field, unstamped element) pairs
# -> the fields that were still there (each pushed when the queue is given)
SWEEP_SEND = Script(
    "sweep_send",
    _NOW
    + """
local stamp = string.format('%014d', now + tonumber(ARGV[1]))
local taken = {}
for i = 3, #ARGV, 2 do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    taken[#taken + 1] = ARGV[i]
    if KEYS[2] then redis.call('RPUSH', KEYS[2], stamp .. ARGV[i + 1]) end
  end
end
if KEYS[2] and #taken > 0 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
return taken
""",
)

# KEYS: expiry zset, info hash  -> flat (holder, info) pairs of the live leases
LEASE_HOLDERS = Script(
    "lease_holders",
    _NOW
    + """
local out = {}
for _, holder in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  out[#out + 1] = holder
  out[#out + 1] = redis.call('HGET', KEYS[2], holder) or ''
end
return out
""",
)

# KEYS: the election key.  ARGV: sweeper, ttl_ms  -> 1 if `sweeper` holds the election
SWEEPER_ELECT = Script(
    "sweeper_elect",
    """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
""",
)

# KEYS: the election key.  ARGV: sweeper  -> 1 if it held the election (now free)
SWEEPER_RESIGN = Script(
    "sweeper_resign",
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""",
)
