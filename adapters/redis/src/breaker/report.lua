-- REPORT: failures seen by one process while the fleet's circuit was closed (in
-- generation ARGV[3]), or the opening of its local breaker ('open'). Failures are
-- counted in a window of ten buckets; reaching the fleet threshold opens the circuit.
--
-- ARGV[1] now ('' for the Redis clock), [2] 'fail' or 'open', [3] generation seen,
-- [4] failures, [5] fleet failure threshold, [6] window (us), [7] recovery time (us),
-- [8] channel.
-- Returns {generation, open (0/1), remaining open time (us), failures in the window}.
local now = clock(ARGV[1])
local g, open, deadline = load()
if g ~= tonumber(ARGV[3]) or open then
  return {g, open and 1 or 0, remaining(open, deadline, now), 0}
end
local recovery = tonumber(ARGV[7])
local counted = 0
if ARGV[2] == 'fail' then
  local width = math.max(1, math.floor(tonumber(ARGV[6]) / 10))
  local bucket = math.floor(now / width)
  redis.call('HINCRBY', KEYS[2], bucket, tonumber(ARGV[4]))
  local fields = {}
  for i = 0, 9 do fields[#fields + 1] = bucket - i end
  for _, n in ipairs(redis.call('HMGET', KEYS[2], unpack(fields))) do
    counted = counted + (tonumber(n) or 0)
  end
  if redis.call('HLEN', KEYS[2]) > 20 then
    for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
      if tonumber(field) <= bucket - 10 then redis.call('HDEL', KEYS[2], field) end
    end
  end
  redis.call('PEXPIRE', KEYS[2], math.ceil(tonumber(ARGV[6]) / 1000) + 1000)
  if counted < tonumber(ARGV[5]) then
    return {g, 0, 0, counted}
  end
end
g, deadline = open_circuit(g, now, recovery, ARGV[8])
return {g, 1, recovery, counted}
