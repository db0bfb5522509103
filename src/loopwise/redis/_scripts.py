"""The Lua scripts of the work queue: each runs atomically, in one round trip."""

from __future__ import annotations

__all__ = ["ACK", "CLAIM", "DEAD_LETTER", "PENDING", "RELEASE"]

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

# KEYS: stream, errors hash. ARGV: group, id.
ACK = """
local n = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
return n
"""

# KEYS: stream, errors hash, dead-letter stream. ARGV: group, id, then field/value pairs.
DEAD_LETTER = """
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
local dead = redis.call('XADD', KEYS[3], '*', unpack(fields))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
return dead
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
