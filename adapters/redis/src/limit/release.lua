-- RELEASE: gives back the lease `id`; in 'abandon' mode also takes `id` out of line and
-- remembers, until the lease time has passed, that it must never be granted (an
-- ACQUIRE for it may still be on its way).
--
-- ARGV[1] now ('' for the Redis clock), [2] capacity, [3] id, [4] 'release' or
-- 'abandon', [5] lease time (us), [6] wake-up channel.
-- Returns 1 if a lease was given back, 0 if there was none.
local now = clock(ARGV[1])
local capacity = tonumber(ARGV[2])
local id = ARGV[3]
expire(now)
local released = redis.call('ZREM', KEYS[1], id)
if ARGV[4] == 'abandon' then
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  local lease = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[5], later(now, lease), id)
  keep(KEYS[5], lease)
end
announce(capacity, ARGV[6])
return released
