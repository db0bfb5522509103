"""The Lua scripts of the work queue: each runs atomically, in one round trip."""

from __future__ import annotations

__all__ = [
    "ACK",
    "ADD_NEW",
    "BROADCAST",
    "CLAIM",
    "DEAD_LETTER",
    "GCRA",
    "HUB_POSITION",
    "PENDING",
    "RECORD_ERROR",
    "RELEASE",
]

# KEYS: stream, errors hash. ARGV: group, consumer, min idle ms, count.
# Takes over entries idle longer than min idle (from any consumer, this one too) and returns,
# for each, {id, fields, delivery count, last recorded error or false}.
CLAIM = """
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0',
                           'COUNT', ARGV[4])
local out = {}
for _, entry in ipairs(claimed[2]) do
  local id = entry[1]
  local info = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  local count = 1
  if info[1] then count = info[1][4] end
  local err = redis.call('HGET', KEYS[2], id)
  table.insert(out, {id, entry[2], count, err})
end
return out
"""

# KEYS: stream, errors hash. ARGV: group, then the ids.
ACK = """
local n = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
redis.call('HDEL', KEYS[2], unpack(ARGV, 2))
return n
"""

# KEYS: stream, errors hash, dead-letter stream. ARGV: group, id, then field/value pairs.
# Dead-letters the entry and acknowledges it, while it is pending: not once another delivery
# acknowledged it (the item is done), nor when the group is gone (it is read again when the
# group is created again). Returns the dead letter's id, or false when none was written.
DEAD_LETTER = """
redis.call('HDEL', KEYS[2], ARGV[2])
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(pending) ~= 'table' or not pending[1] then return false end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
local dead = redis.call('XADD', KEYS[3], '*', unpack(fields))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return dead
"""

# KEYS: stream, errors hash. ARGV: group, id, error. Records a failed delivery's error while
# the entry is pending: not once another delivery acknowledged it, as nothing would ever clear
# the record then. Returns 1 when recorded.
RECORD_ERROR = """
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if type(pending) ~= 'table' or not pending[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

# KEYS: stream, seen set. ARGV: maxlen (0: none), then the encoded items. Adds each item whose
# bytes are not in the set yet, and puts them there, in one atomic step; returns the new ids
# (false for an item seen before).
ADD_NEW = """
local out = {}
local maxlen = tonumber(ARGV[1])
for i = 2, #ARGV do
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    if maxlen > 0 then
      out[#out + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'd', ARGV[i])
    else
      out[#out + 1] = redis.call('XADD', KEYS[1], '*', 'd', ARGV[i])
    end
  else
    out[#out + 1] = false
  end
end
return out
"""

# KEYS: stream. ARGV: group. The number of entries delivered and not acknowledged.
PENDING = """
return redis.call('XPENDING', KEYS[1], ARGV[1])[1]
"""

# KEYS: stream. ARGV: group, consumer, idle ms, then ids. Hands entries back: they stay pending
# (their delivery count unchanged) but look idle for ``idle ms``, so any worker claims them now.
RELEASE = """
for i = 4, #ARGV do
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
end
return #ARGV - 3
"""

# GCRA on Redis' own clock. KEYS: the limiter's key. ARGV: interval (microseconds per
# acquisition), burst, amount. Returns {1, now} when granted (now: Redis' time in microseconds),
# {0, wait} when not (microseconds until ``amount`` would fit). The key holds the theoretical
# arrival time and expires once it is in the past (an idle limiter is a fresh one).
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
local ready = tat - (burst - amount) * interval
if now < ready then
  return {0, math.max(1, math.ceil(ready - now))}
end
if tat < now then tat = now end
tat = tat + amount * interval
local ttl = math.ceil((tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', math.ceil(tat)), 'PX', ttl)
return {1, now}
"""

# KEYS: the backplane's hub stream, its counter. ARGV: maxlen, then field/value pairs. Numbers
# the message (field 'n': 1, 2, 3, ... in stream order, whoever broadcasts it) and adds it in
# the same atomic step, so a follower that sees a number jump knows how many it missed.
BROADCAST = """
local n = redis.call('INCR', KEYS[2])
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'n', n, unpack(ARGV, 2))
"""

# KEYS: the hub stream, its counter. Where a follower starts: {the last entry's id ('0-0' when
# there is none), the number of the last message broadcast (0 when none)}, read together.
HUB_POSITION = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local id = '0-0'
if last[1] then id = last[1][1] end
return {id, tonumber(redis.call('GET', KEYS[2]) or 0) or 0}
"""
