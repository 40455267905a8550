-- PROBE: asks for one of the fleet's half_open_max_calls probe leases.
--
-- ARGV[1] now ('' for the Redis clock), [2] probe id, [3] half_open_max_calls,
-- [4] probe lease time (us).
-- Returns {verdict, generation, remaining open time (us)}: verdict 1 granted, 0 the
-- circuit is closed (no probe needed), -1 still open, -2 every probe lease is taken.
local now = clock(ARGV[1])
local g, open, deadline = load()
if not open then
  return {0, g, 0}
end
if now < deadline then
  return {-1, g, deadline - now}
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then
  return {-2, g, 0}
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[2])
redis.call('PEXPIRE', KEYS[3], math.ceil(tonumber(ARGV[4]) / 1000) + 1000)
return {1, g, 0}
