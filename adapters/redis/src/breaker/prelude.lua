-- kompoz shared circuit breaker: what every script of the breaker shares.
--
-- KEYS[1] state     hash: g (generation), open ('1' while open or half-open),
--                   until (end of the open period, us), successes (probes that passed)
-- KEYS[2] failures  hash: window bucket number -> failures counted in it (closed only)
-- KEYS[3] probes    zset: probe id -> expiry of its probe lease (us)
--
-- The fleet's circuit is closed while open ~= '1'; open while now < until; half-open
-- from until on, where only holders of a probe lease may call. Every transition starts
-- a new generation and is published on the breaker's channel as "open <g> <remaining
-- us>" or "closed <g>"; outcomes reported for another generation are late and ignored.

local function clock(override)
  if override ~= '' then return tonumber(override) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- {generation, open, until, successes}
local function load()
  local s = redis.call('HMGET', KEYS[1], 'g', 'open', 'until', 'successes')
  return tonumber(s[1]) or 0, s[2] == '1', tonumber(s[3]) or 0, tonumber(s[4]) or 0
end

local function remaining(open, deadline, now)
  if not open or deadline <= now then return 0 end
  return deadline - now
end

-- Opens the circuit for `recovery` us from `now`, in generation g + 1, and says so.
local function open_circuit(g, now, recovery, channel)
  local deadline = now + recovery
  redis.call('HSET', KEYS[1], 'g', g + 1, 'open', '1', 'until', deadline, 'successes', 0)
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', channel, 'open ' .. (g + 1) .. ' ' .. string.format('%d', recovery))
  return g + 1, deadline
end
