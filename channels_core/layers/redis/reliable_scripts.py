"""The Lua scripts of at-least-once channels (see `reliable.py` beside this module).

Per at-least-once queue `q`, on the queue's shard (so every script touches one
slot on Redis Cluster):

    q              the queue, as for any channel; an element is
                   deadline(14 digits) + deliveries so far + "\\n" + payload
                   (the "targets" slot of `framing`, unused by normal queues)
    alo:bell:q     one element per message waiting (at most), so a blocking
                   receive wakes; popping one takes nothing (see `ALO_TAKE`)
    alo:flight:q   sorted set: delivery id -> redelivery deadline (ms)
    alo:data:q     hash: delivery id -> the element as delivered (its count
                   included), and '#seq', the last delivery id

The move from the queue into flight is one script (`ALO_TAKE`), so a message
is always in exactly one of the two: a worker killed at any point leaves it
either queued or in flight with a deadline.
"""

from __future__ import annotations

from .scripts import _NOW, _PURGE, Script

# Deliveries so far, from an element: the digits between the deadline and the newline ('' is 0).
_COUNT = """
local function split(e)
  local nl = string.find(e, '\\n', 15, true)
  if not nl then return nil end
  return string.sub(e, 1, 14), tonumber(string.sub(e, 15, nl - 1)) or 0, string.sub(e, nl)
end
"""

# KEYS: queue, bell [, channel stats, global stats]
# ARGV: expiry_ms, capacity, ttl_s, bell element (unstamped), tails...  -> count sent, or -1 - waiting when full
ALO_SEND = Script(
    "alo_send",
    _NOW
    + _PURGE
    + """
local key = KEYS[1]
local n = #ARGV - 4
local waiting = redis.call('LLEN', key)
if waiting + n > tonumber(ARGV[2]) then
  waiting = waiting - purge(key, now)
  if waiting + n > tonumber(ARGV[2]) then
    if KEYS[3] then
      redis.call('HINCRBY', KEYS[3], 'channel_full_count', 1)
      redis.call('EXPIRE', KEYS[3], 3600)
      redis.call('HINCRBY', KEYS[4], 'channel_full_count', 1)
      redis.call('EXPIRE', KEYS[4], 86400)
    end
    return -1 - waiting
  end
end
local stamp = string.format('%014d', now + tonumber(ARGV[1]))
local bells = {}
for i = 5, #ARGV do
  redis.call('RPUSH', key, stamp .. ARGV[i])
  bells[#bells + 1] = stamp .. ARGV[4]
end
redis.call('RPUSH', KEYS[2], unpack(bells))
-- never more bells than messages waiting
redis.call('LTRIM', KEYS[2], -redis.call('LLEN', key), -1)
redis.call('EXPIRE', key, ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
if KEYS[3] then
  redis.call('HINCRBY', KEYS[3], 'messages_count', n)
  redis.call('EXPIRE', KEYS[3], 3600)
  redis.call('HINCRBY', KEYS[4], 'messages_count', n)
  redis.call('EXPIRE', KEYS[4], 86400)
end
return n
""",
)

# KEYS: queue, bell, flight, data
# ARGV: max messages, redeliver_after_ms, max_deliveries, ttl_s, dead letters ('1': kept for the caller, '0': dropped),
#       bell element (unstamped)
# -> {taken: flat (id, element) pairs, dead: flat (id, element) pairs, expired count}
# First returns expired deliveries to the head of the queue (or, delivered max_deliveries
# times, hands them to the caller as dead under a new delivery id, in flight, for it to
# send to the dead-letter channel and ack), then moves up to `max` messages into flight.
ALO_TAKE = Script(
    "alo_take",
    _NOW
    + _COUNT
    + """
local queue, bell, flight, data = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local redeliver = tonumber(ARGV[2])
local max_deliveries = tonumber(ARGV[3])
local dead = {}
local expired = 0
local late = redis.call('ZRANGEBYSCORE', flight, '-inf', now, 'LIMIT', 0, 1000)
for i = #late, 1, -1 do  -- LPUSH in reverse: the oldest delivery goes back first
  local id = late[i]
  local e = redis.call('HGET', data, id)
  redis.call('ZREM', flight, id)
  redis.call('HDEL', data, id)
  if e then
    local deadline, count, rest = split(e)
    if not deadline then
      expired = expired + 1
    elseif count >= max_deliveries then
      if ARGV[5] == '1' then
        local nid = tostring(redis.call('HINCRBY', data, '#seq', 1))
        redis.call('HSET', data, nid, e)
        redis.call('ZADD', flight, now + redeliver, nid)
        dead[#dead + 1] = nid
        dead[#dead + 1] = e
      else
        dead[#dead + 1] = ''
        dead[#dead + 1] = e
      end
    else
      redis.call('LPUSH', queue, e)
    end
  end
end
local taken = {}
local max = tonumber(ARGV[1])
while #taken < 2 * max do
  local e = redis.call('LPOP', queue)
  if not e then break end
  local deadline, count, rest = split(e)
  if deadline and tonumber(deadline) and tonumber(deadline) > now then
    local delivered = deadline .. tostring(count + 1) .. rest
    local id = tostring(redis.call('HINCRBY', data, '#seq', 1))
    redis.call('HSET', data, id, delivered)
    redis.call('ZADD', flight, now + redeliver, id)
    taken[#taken + 1] = id
    taken[#taken + 1] = delivered
  else
    expired = expired + 1
  end
end
-- One bell per message left (what came back from flight has none yet): idle readers wake for them.
local left = redis.call('LLEN', queue)
if left == 0 then
  redis.call('DEL', bell)
else
  redis.call('LTRIM', bell, -left, -1)
  local missing = left - redis.call('LLEN', bell)
  if missing > 0 then
    local ring = string.format('%014d', now + 1000 * tonumber(ARGV[4])) .. ARGV[6]
    for i = 1, math.min(missing, 1000) do redis.call('RPUSH', bell, ring) end
    redis.call('EXPIRE', bell, ARGV[4])
  end
end
if redis.call('EXISTS', data) == 1 then
  redis.call('EXPIRE', flight, ARGV[4])
  redis.call('EXPIRE', data, ARGV[4])
end
return {taken, dead, expired}
""",
)

# KEYS: flight, data.  ARGV: delivery ids  -> how many were still in flight (now removed)
ALO_ACK = Script(
    "alo_ack",
    """
local n = 0
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then n = n + 1 end
  redis.call('HDEL', KEYS[2], ARGV[i])
end
return n
""",
)

# KEYS: flight.  ARGV: redeliver_after_ms, delivery ids  -> how many are still in flight (deadline moved)
ALO_TOUCH = Script(
    "alo_touch",
    _NOW
    + """
local n = 0
local deadline = now + tonumber(ARGV[1])
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], deadline, ARGV[i])
    n = n + 1
  end
end
return n
""",
)

# KEYS: queue, bell, flight, data.  ARGV: delivery id, max_deliveries, ttl_s, redeliver_after_ms, bell element
# -> 'gone' (not in flight), 'requeued' (at the tail, with a bell), or {'dead', element}: delivered
#    max_deliveries times, left in flight (deadline moved) for the caller to dead-letter and ack
ALO_NACK = Script(
    "alo_nack",
    _NOW
    + _COUNT
    + """
local e = redis.call('HGET', KEYS[4], ARGV[1])
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) or not e then return 'gone' end
local deadline, count, rest = split(e)
if deadline and count >= tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
  return {'dead', e}
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
if not deadline then return 'gone' end
redis.call('RPUSH', KEYS[1], e)
redis.call('RPUSH', KEYS[2], string.format('%014d', now + 1000 * tonumber(ARGV[3])) .. ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 'requeued'
""",
)

ALO_SCRIPTS = [ALO_SEND, ALO_TAKE, ALO_ACK, ALO_TOUCH, ALO_NACK]
