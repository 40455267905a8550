-- RELEASE: gives back the leases `ids`; in 'abandon' mode also takes them out of line
-- and remembers, until the lease time has passed, that they must never be granted (an
-- ACQUIRE for one may still be on its way).
--
-- ARGV[1] now ('' for the Redis clock), [2] capacity, [3] 'release' or 'abandon',
-- [4] lease time (us), [5] wake-up channel, [6...] ids.
-- Returns how many leases were given back.
local now = clock(ARGV[1])
local capacity = tonumber(ARGV[2])
local abandon = ARGV[3] == 'abandon'
local lease = tonumber(ARGV[4])
expire(now)
local released = 0
for i = 6, #ARGV do
  local id = ARGV[i]
  released = released + redis.call('ZREM', KEYS[1], id)
  if abandon then
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZADD', KEYS[5], later(now, lease), id)
  end
end
if abandon then
  keep(KEYS[5], lease)
end
announce(capacity, ARGV[5])
return released
