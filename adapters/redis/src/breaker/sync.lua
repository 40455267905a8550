-- SYNC: reads the fleet's state; with 'push', a process that knows the circuit is open
-- (for ARGV[3] more us) tells a Redis that has no state (it restarted and forgot).
--
-- ARGV[1] now ('' for the Redis clock), [2] 'read' or 'push', [3] remaining open time
-- (us), [4] channel.
-- Returns {generation, open (0/1), remaining open time (us)}.
local now = clock(ARGV[1])
if ARGV[2] == 'push' and redis.call('EXISTS', KEYS[1]) == 0 then
  local g = open_circuit(0, now, tonumber(ARGV[3]), ARGV[4])
  return {g, 1, tonumber(ARGV[3])}
end
local g, open, deadline = load()
return {g, open and 1 or 0, remaining(open, deadline, now)}
