-- kompoz fleet-wide concurrency limit: what every script of the limit shares.
--
-- KEYS[1] holders   zset: lease id -> expiry (microseconds of the Redis clock)
-- KEYS[2] line      zset: ticket -> arrival number (the order of the wait line)
-- KEYS[3] waiters   zset: ticket -> deadline by which its waiter must poll again
-- KEYS[4] arrivals  counter: the last arrival number handed out
-- KEYS[5] abandoned zset: id -> when to forget it (an acquisition given up by its owner)
--
-- A lease is alive while now < expiry; at now == expiry it is gone. Times are integer
-- microseconds held in Lua numbers (doubles), exact below 2^53; they saturate there.

local MAX_US = 9007199254740991

-- The Redis clock, or the caller's (tests drive the scripts with their own clock).
local function clock(override)
  if override ~= '' then return tonumber(override) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function later(now, span)
  return math.min(now + span, MAX_US)
end

-- Forgets leases whose holder stopped renewing and waiters who stopped polling.
-- Returns how many went (freed permits or places in line).
local function expire(now)
  local lapsed = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local stalled = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
  for i = 1, #stalled do
    redis.call('ZREM', KEYS[2], stalled[i])
  end
  if #stalled > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  return lapsed + #stalled
end

-- Publishes the tickets now owed a permit: the first `free` in line.
local function announce(capacity, channel)
  local free = capacity - redis.call('ZCARD', KEYS[1])
  if free <= 0 then
    return
  end
  local owed = redis.call('ZRANGE', KEYS[2], 0, free - 1)
  if #owed > 0 then
    redis.call('PUBLISH', channel, table.concat(owed, ' '))
  end
end

-- Keeps an unused limit from leaving keys behind: every member expires sooner.
local function keep(key, span)
  redis.call('PEXPIRE', key, math.ceil(span / 1000) + 1000)
end
