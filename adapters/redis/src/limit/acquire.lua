-- ACQUIRE: takes a permit for `id` if one is owed to it, else (in 'wait' mode) puts or
-- keeps `id` in line.
--
-- ARGV[1] now ('' for the Redis clock), [2] capacity, [3] id, [4] lease time (us),
-- [5] 'try' or 'wait', [6] waiter time to live (us), [7] wake-up channel.
-- Returns {1, expiry} when granted, {0, place in line (0-based, -1 if not in line)},
-- or {-1, 0} if `id` was abandoned by its owner (it is never granted).
local now = clock(ARGV[1])
local capacity = tonumber(ARGV[2])
local id = ARGV[3]
local lease = tonumber(ARGV[4])
local changed = expire(now) > 0

if redis.call('ZSCORE', KEYS[5], id) then
  return {-1, 0}
end
local held = redis.call('ZSCORE', KEYS[1], id)
if held then
  return {1, tonumber(held)}
end

local free = capacity - redis.call('ZCARD', KEYS[1])
local place = redis.call('ZRANK', KEYS[2], id)
local owed
if place then
  owed = place < free
else
  -- A newcomer takes only a permit that nobody in line is owed.
  owed = free > redis.call('ZCARD', KEYS[2])
end

if owed then
  local expiry = later(now, lease)
  redis.call('ZADD', KEYS[1], expiry, id)
  keep(KEYS[1], lease)
  if place then
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
  end
  if changed then
    announce(capacity, ARGV[7])
  end
  return {1, expiry}
end

if ARGV[5] == 'wait' then
  local ttl = tonumber(ARGV[6])
  if not place then
    redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), id)
    place = redis.call('ZCARD', KEYS[2]) - 1
  end
  redis.call('ZADD', KEYS[3], later(now, ttl), id)
  keep(KEYS[2], ttl)
  keep(KEYS[3], ttl)
end
if changed then
  announce(capacity, ARGV[7])
end
return {0, place or -1}
