-- RENEW: extends the leases of one process, and registers again those Redis does not
-- have (they lapsed, or Redis restarted and forgot them), whatever the capacity: the
-- count must include every permit that is held, even when that is too many. Ids that
-- were abandoned are not registered.
--
-- ARGV[1] now ('' for the Redis clock), [2] capacity, [3] lease time (us),
-- [4] wake-up channel, [5...] lease ids.
-- Returns the ids that Redis did not have.
local now = clock(ARGV[1])
local capacity = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local changed = expire(now) > 0
local expiry = later(now, lease)
local missing = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  if not redis.call('ZSCORE', KEYS[5], id) then
    if redis.call('ZADD', KEYS[1], expiry, id) == 1 then
      missing[#missing + 1] = id
    end
  end
end
if #ARGV >= 5 then
  keep(KEYS[1], lease)
end
if changed then
  announce(capacity, ARGV[4])
end
return missing
