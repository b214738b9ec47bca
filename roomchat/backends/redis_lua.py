"""The Redis backend's Lua scripts: what must happen atomically on Redis."""

from __future__ import annotations

# KEYS: the room's stream, the room index, the id floor.
# ARGV: room id, history, max rooms (0: no limit), user id, text.
# Sets `added` to the new entry's id; answers nil when the room would pass max rooms.
_STORE = """
local stream, index, floor_key = KEYS[1], KEYS[2], KEYS[3]
local room, max_rooms = ARGV[1], tonumber(ARGV[3])
if max_rooms > 0 and not redis.call('ZSCORE', index, room) then
  if redis.call('ZCARD', index) >= max_rooms then return nil end
end
local id = '*'
if redis.call('EXISTS', stream) == 0 then
  -- A new stream would take its first id from Redis's clock alone: keep it
  -- above every id a deleted room ever had, whatever the clock did since.
  local floor = redis.call('GET', floor_key)
  if floor then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local ms, seq = string.match(floor, '^(%d+)-(%d+)$')
    if now <= tonumber(ms) then id = ms .. '-' .. string.format('%d', tonumber(seq) + 1) end
  end
end
local added = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], id, 'userId', ARGV[4], 'text', ARGV[5])
redis.call('PERSIST', stream)  -- a tombstone left by an older roomchat becomes a room again
redis.call('ZADD', index, 0, room)
"""

# Answers the new entry's id, or nil when the room would pass max rooms.
PUBLISH = _STORE + "return added\n"

# `PUBLISH` and an idempotency key in one step. KEYS: as PUBLISH, then the key's
# name; ARGV: as PUBLISH, then the key's lifetime in seconds and the text's
# fingerprint (hex). The key's value is "<message id>#<fingerprint>", not the text
# (roomchat.core.idempotency). Answers {1, id, text, 1} when stored; for a retry
# {0, id, text, 1} while history (or an older roomchat's "<id> <text>" value) has
# the text, else {0, id, fingerprint, 0}; nil when the room would pass max rooms.
PUBLISH_ONCE = (
    """
local first = redis.call('GET', KEYS[4])
if first then
  local space = string.find(first, ' ', 1, true)
  if space then return {0, string.sub(first, 1, space - 1), string.sub(first, space + 1), 1} end
  local hash = string.find(first, '#', 1, true)
  local id = string.sub(first, 1, hash - 1)
  local entry = redis.call('XRANGE', KEYS[1], id, id)
  if #entry > 0 then
    local fields = entry[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == 'text' then return {0, id, fields[i + 1], 1} end
    end
  end
  return {0, id, string.sub(first, hash + 1), 0}
end
"""
    + _STORE
    + """
redis.call('SET', KEYS[4], added .. '#' .. ARGV[7], 'EX', ARGV[6])
return {1, added, ARGV[5], 1}
"""
)

# KEYS: the room's stream, the room index, the id floor, the deletion channel.
# ARGV: room id, the notice to publish.
DELETE = """
local stream, index, floor_key = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', stream) == 1 then
  local info = redis.call('XINFO', 'STREAM', stream)
  local last
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
  local floor = redis.call('GET', floor_key)
  local function key(id)
    local ms, seq = string.match(id, '^(%d+)-(%d+)$')
    return tonumber(ms), tonumber(seq)
  end
  local lms, lseq = key(last)
  local fms, fseq = -1, -1
  if floor then fms, fseq = key(floor) end
  if lms > fms or (lms == fms and lseq > fseq) then redis.call('SET', floor_key, last) end
  redis.call('DEL', stream)
end
redis.call('ZREM', index, ARGV[1])
redis.call('PUBLISH', KEYS[4], ARGV[2])
return 1
"""

# KEYS: the set of rooms older roomchat versions kept, the room index.
# ARGV: the stream key prefix. Moves the rooms that still have history, once.
MIGRATE_ROOM_SET = """
if redis.call('TYPE', KEYS[1]).ok ~= 'set' then return 0 end
local moved = 0
for _, room in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('XLEN', ARGV[1] .. room) > 0 then
    redis.call('ZADD', KEYS[2], 0, room)
    moved = moved + 1
  end
end
redis.call('DEL', KEYS[1])
return moved
"""

# A token bucket on Redis's own clock, so every process shares one rate per key.
SPEND = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate else tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""

# Presence: each field of a room's hash is one process's part, "<deadline ms> <JSON>",
# the deadline on Redis's clock so processes on machines with different clocks agree.
# KEYS: the rooms' hashes. ARGV: node, ttl ms, channel, then per key: part JSON ('' withdraws
# it) and a change notice to publish ('' for none).
SHARE_PRESENCE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local node, ttl, channel = ARGV[1], tonumber(ARGV[2]), ARGV[3]
for i, key in ipairs(KEYS) do
  local part, notice = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  if part == '' then
    redis.call('HDEL', key, node)
  else
    redis.call('HSET', key, node, string.format('%.0f', now + ttl) .. ' ' .. part)
    if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  end
  if notice ~= '' then redis.call('PUBLISH', channel, notice) end
end
return 0
"""

# KEYS: the rooms' hashes. ARGV[1]: this node, whose own part is left out.
# Answers, per key, the other parts' JSON; expired parts are deleted.
READ_PRESENCE = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  local fields = redis.call('HGETALL', key)
  local live = {}
  for j = 1, #fields, 2 do
    local value = fields[j + 1]
    local space = string.find(value, ' ', 1, true)
    local deadline = space and tonumber(string.sub(value, 1, space - 1))
    if not deadline or deadline <= now then
      redis.call('HDEL', key, fields[j])
    elseif fields[j] ~= ARGV[1] then
      live[#live + 1] = string.sub(value, space + 1)
    end
  end
  out[i] = live
end
return out
"""
