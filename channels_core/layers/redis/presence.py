"""The `presence` extension of the Redis layer (see `channels_core.layers.presence` for the semantics).

Keys, on the shard of the member's queue (where its group membership and,
for an interface server's channel, that server's lease live too):

    prefix + "presence:" + group        hash: channel -> join time (µs) "\\n" record
    prefix + "presence#of:" + queue      set of group "\\n" channel, for each "server!" queue
    prefix + "presence#holders"          set of the "server!" queues that have records here

Group names hold no ':' or '#', so these never meet another group's keys.
Because a server's lease is on the same shard as its members' records
(`KeyLayout.lease_shard` is the shard of the holder's queue), each shard
answers alone, in one script: `presence_members` runs one script per shard
(one round trip per Redis server; on Redis Cluster every key carries its
bucket's hash tag) that leaves out members whose server's lease has expired
or was swept. `lease_sweep` (the elected sweeper, every second) calls
`_presence_sweep`, which takes every record of a swept server out in one
script per shard; the caller then removes their group memberships and sends
the leave events. Each record is taken by one script only, so each leave
event is sent at most once; a sweeper killed between the script and the
sends loses those events (the records are gone either way).
"""

from __future__ import annotations

import logging
from typing import Any

from .. import names
from ..presence import Member, check_join, decode_record, encode_record, event_message
from .scripts import _NOW, _NOW_US, Script

logger = logging.getLogger("channels_core.layers.redis")

# KEYS: the group's presence hash [, the queue's "of" set, the holders set]
# ARGV: channel, group, queue name, record, ttl_s  -> the join time (microseconds, as a string)
# Microseconds, not ms: members are listed in join order, and joins a millisecond apart are common.
PRESENCE_JOIN = Script(
    "presence_join",
    _NOW_US
    + """
local joined = string.format('%.0f', now_us)
redis.call('HSET', KEYS[1], ARGV[1], joined .. '\\n' .. ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
if KEYS[2] then
  redis.call('SADD', KEYS[2], ARGV[2] .. '\\n' .. ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
return joined
""",
)

# KEYS: the group's presence hash [, the queue's "of" set].  ARGV: channel, group
# -> the member's value, or false when it had none
PRESENCE_LEAVE = Script(
    "presence_leave",
    """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
if KEYS[2] then redis.call('SREM', KEYS[2], ARGV[2] .. '\\n' .. ARGV[1]) end
return value
""",
)

# KEYS: the group's presence hash, this shard's lease expiry zset, its swept zset
# ARGV: group_expiry_s  -> the live members in one string, each channel "\n" len(value) "\n" value
# (one bulk reply: parsing 10,000 replies for 5,000 members cost more than the script)
# Records older than group_expiry go (as group memberships do); those of a server whose lease
# expired or was swept are left out (the sweep removes them and sends their leave events).
PRESENCE_MEMBERS = Script(
    "presence_members",
    _NOW
    + """
local cutoff = now * 1000 - tonumber(ARGV[1]) * 1000000  -- join times are in microseconds
local dead = {}
local out = {}
local stale = {}
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local channel, value = entries[i], entries[i + 1]
  local joined = tonumber(string.match(value, '^(%d+)\\n'))
  if not joined or joined < cutoff then
    stale[#stale + 1] = channel
  else
    local bang = string.find(channel, '!', 1, true)
    local gone = false
    if bang then
      local queue = string.sub(channel, 1, bang)
      gone = dead[queue]
      if gone == nil then
        local expires = redis.call('ZSCORE', KEYS[2], queue)
        gone = (expires and tonumber(expires) <= now) or (redis.call('ZSCORE', KEYS[3], queue) ~= false)
        dead[queue] = gone
      end
    end
    if not gone then
      out[#out + 1] = channel .. '\\n' .. #value .. '\\n' .. value
    end
  end
end
for i = 1, #stale, 1000 do  -- unpack has a stack limit
  redis.call('HDEL', KEYS[1], unpack(stale, i, math.min(i + 999, #stale)))
end
return table.concat(out)
""",
)

# KEYS: this shard's holders set, its swept lease zset.  ARGV: the shard's key prefix
# -> flat (group, channel, value) triples of the records of swept servers, removed
PRESENCE_SWEEP = Script(
    "presence_sweep",
    """
local prefix = ARGV[1]
local out = {}
local swept = {}
for _, queue in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local of = prefix .. 'presence#of:' .. queue
  if redis.call('ZSCORE', KEYS[2], queue) then
    swept[#swept + 1] = queue
  elseif redis.call('EXISTS', of) == 0 then
    swept[#swept + 1] = queue  -- its records expired: nothing to remove, forget the queue
  end
end
-- see TOUCH_FIRST in scripts.py: every key this script writes is read before any write
local work = {}
for _, queue in ipairs(swept) do
  local of = prefix .. 'presence#of:' .. queue
  redis.call('EXISTS', of, KEYS[1])
  for _, item in ipairs(redis.call('SMEMBERS', of)) do
    local nl = string.find(item, '\\n', 1, true)
    if nl then
      local group, channel = string.sub(item, 1, nl - 1), string.sub(item, nl + 1)
      local hash = prefix .. 'presence:' .. group
      redis.call('EXISTS', hash, of)
      work[#work + 1] = {hash, group, channel}
    end
  end
end
for _, item in ipairs(work) do
  local value = redis.call('HGET', item[1], item[3])
  if value then
    redis.call('HDEL', item[1], item[3])
    out[#out + 1] = item[2]
    out[#out + 1] = item[3]
    out[#out + 1] = value
  end
end
for _, queue in ipairs(swept) do
  redis.call('DEL', prefix .. 'presence#of:' .. queue)
  redis.call('SREM', KEYS[1], queue)
end
return out
""",
)


class RedisPresence:
    """Mixin for `RedisChannelLayer`: the `PresenceExtension` methods (list "presence" in `extensions`)."""

    def _presence_keys(self, group: str, channel: str) -> tuple[Any, list[bytes]]:
        """The shard of `channel`'s queue, and its presence keys (with the holder index for "server!" queues)."""
        qname = names.list_name(channel)
        shard = self.keys.shard_of(qname)  # type: ignore[attr-defined]
        key_on = self.keys.key_on  # type: ignore[attr-defined]
        keys = [key_on(shard.index, "presence:" + group)]
        if qname.endswith("!"):
            keys += [key_on(shard.index, "presence#of:" + qname), key_on(shard.index, "presence#holders")]
        return shard, keys

    def _presence_member(self, channel: str, value: bytes) -> tuple[Member, bool]:
        """The `Member` a stored value describes, and whether it asked for events."""
        joined, _, payload = value.partition(b"\n")
        record = decode_record(self.serializer, payload)  # type: ignore[attr-defined]
        member = Member(channel, record.get("u"), int(joined) / 1_000_000, record.get("i"))
        return member, bool(record.get("e"))

    def presence_join(
        self, group: str, channel: str, user: int | str | None = None, info: dict | None = None, events: bool = False
    ) -> float:
        """Add `channel` to `group` with its presence record; the join time (unix seconds, Redis's clock).

        With `events`, the join event goes to the group before the channel is
        added, and its leaves will be announced too.
        """
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        check_join(user, info, events)
        record = encode_record(self.serializer, user, info, events)  # type: ignore[attr-defined]
        shard, keys = self._presence_keys(group, channel)
        args = (channel, group, names.list_name(channel), record, self._group_ttl)  # type: ignore[attr-defined]
        joined = int(shard.evalsha(PRESENCE_JOIN, keys, args)) / 1_000_000
        if events:
            self.send_group(group, event_message("join", group, Member(channel, user, joined, info)))  # type: ignore[attr-defined]
        self.group_add(group, channel)  # type: ignore[attr-defined]
        return joined

    def presence_leave(self, group: str, channel: str) -> bool:
        """Remove `channel` from `group` and its presence record; True if it had one (then a leave event if asked)."""
        names.validate_group_name(group)
        names.validate_channel_name(channel)
        self.group_discard(group, channel)  # type: ignore[attr-defined]
        shard, keys = self._presence_keys(group, channel)
        value = shard.evalsha(PRESENCE_LEAVE, keys[:2], (channel, group))
        if not value:
            return False
        member, events = self._presence_member(channel, value)
        if events:
            self.send_group(group, event_message("leave", group, member))  # type: ignore[attr-defined]
        return True

    def presence_members(self, group: str) -> list[Member]:
        """The members of `group`'s presence, oldest join first; not those of a server whose lease expired."""
        names.validate_group_name(group)
        keys = self.keys  # type: ignore[attr-defined]
        calls = []
        for shard in self.shards:  # type: ignore[attr-defined]
            expiry, _, swept, _ = keys.lease_keys(shard.index)
            calls.append((shard, [keys.key_on(shard.index, "presence:" + group), expiry, swept], (self._group_ttl,)))  # type: ignore[attr-defined]
        out = []
        for reply in self._evalsha_each(PRESENCE_MEMBERS, calls):  # type: ignore[attr-defined]
            out += self._parse_members(reply or b"")
        out.sort(key=lambda member: member.joined)
        return out

    def _parse_members(self, data: bytes) -> list[Member]:
        """The members PRESENCE_MEMBERS packed into one string."""
        out = []
        loads = self.serializer.loads  # type: ignore[attr-defined]
        find = data.find
        start, end = 0, len(data)
        while start < end:
            nl = find(b"\n", start)
            size_end = find(b"\n", nl + 1)
            if nl < 0 or size_end < 0:
                break
            value_start = size_end + 1
            value_end = value_start + int(data[nl + 1 : size_end])
            channel = data[start:nl].decode("ascii")
            joined_end = find(b"\n", value_start, value_end)
            start = value_end
            try:
                record = loads(data[joined_end + 1 : value_end])
                joined = int(data[value_start:joined_end]) / 1_000_000
                out.append(Member(channel, record.get("u"), joined, record.get("i")))
            except Exception as exc:  # another deployment's keys, or garbage: skip that one
                logger.debug("Skipped an unreadable presence record (%s: %s)", type(exc).__name__, exc)
        return out

    def _presence_sweep(self) -> int:
        """Remove the records of swept servers, their group memberships, and send their leave events; how many."""
        keys = self.keys  # type: ignore[attr-defined]
        calls = [
            (s, [keys.key_on(s.index, "presence#holders"), keys.lease_keys(s.index)[2]], (keys.shard_prefix(s.index),))
            for s in self.shards  # type: ignore[attr-defined]
        ]
        removed = 0
        for reply in self._evalsha_each(PRESENCE_SWEEP, calls):  # type: ignore[attr-defined]
            for i in range(0, len(reply), 3):
                group, channel = reply[i].decode("ascii"), reply[i + 1].decode("ascii")
                removed += 1
                try:
                    self.group_discard(group, channel)  # type: ignore[attr-defined]
                    member, events = self._presence_member(channel, reply[i + 2])
                    if events:
                        self.send_group(group, event_message("leave", group, member))  # type: ignore[attr-defined]
                except Exception as exc:  # one bad record must not keep the others' leave events
                    logger.warning("Presence sweep: %s in %s (%s: %s)", channel, group, type(exc).__name__, exc)
        if removed:
            logger.info("Presence: removed %d members of interface servers whose lease was swept", removed)
        return removed
