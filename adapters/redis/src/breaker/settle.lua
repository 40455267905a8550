-- SETTLE: the outcome of a probe admitted in generation ARGV[2]. Its lease is given back
-- whatever the generation; the outcome moves the state only in that generation. A failed
-- probe opens the circuit again; success_threshold successes close it.
--
-- ARGV[1] now ('' for the Redis clock), [2] generation, [3] probe id,
-- [4] 'success', 'failure' or 'abandon', [5] success_threshold, [6] recovery time (us),
-- [7] channel.
-- Returns {generation, open (0/1), remaining open time (us)}.
local now = clock(ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[3])
local g, open, deadline, successes = load()
if g ~= tonumber(ARGV[2]) or not open or ARGV[4] == 'abandon' then
  return {g, open and 1 or 0, remaining(open, deadline, now)}
end
if ARGV[4] == 'failure' then
  g, deadline = open_circuit(g, now, tonumber(ARGV[6]), ARGV[7])
  return {g, 1, deadline - now}
end
successes = successes + 1
if successes < tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'successes', successes)
  return {g, 1, 0}
end
redis.call('HSET', KEYS[1], 'g', g + 1, 'open', '0', 'until', 0, 'successes', 0)
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[7], 'closed ' .. (g + 1))
return {g + 1, 0, 0}
