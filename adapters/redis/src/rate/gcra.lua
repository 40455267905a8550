-- kompoz fleet-wide rate limit: GCRA, with exactly the arithmetic of kompoz's local
-- limiter (core/src/rate): every value an unsigned 64-bit integer of nanoseconds.
--
-- Lua numbers are doubles, exact only below 2^53, so instants and durations are held
-- as pairs {seconds, nanoseconds} (base 10^9): sums, differences and comparisons of
-- pairs are exact over the whole 64-bit range and beyond. The products (cells x
-- interval) are computed by the caller, exactly, and passed in.
--
-- KEYS[1]  the theoretical arrival time (TAT), a decimal string of nanoseconds since
--          the Unix epoch on the Redis clock; absent means 0 (a fresh limiter).
-- ARGV[1]  now, in nanoseconds ('' for the Redis clock)
-- ARGV[2]  T, the interval: nanoseconds per cell
-- ARGV[3]  tau = burst x T, the tolerance
-- ARGV[4]  the cost of the cells asked for: cells x T
-- ARGV[5]  'take', or 'charge' (count cells admitted elsewhere, without deciding)
-- ARGV[6]  the cells asked for, and ARGV[7] how many more to take if they conform too
--          (a local reservation; 0 for an exact check)
--
-- 'take' decides, with base = max(tat, now) and own = base + cost:
--   own > 2^64 - 1   -> refused, earliest = 2^64 - 1
--   own <= now + tau -> admitted (plus up to ARGV[7] more cells, one T each, while they
--                       conform too); tat := own
--   otherwise        -> refused, earliest = own - tau; tat unchanged
-- 'charge' sets tat := min(base + cost, now + tau, 2^64 - 1).
-- Returns {cells admitted (0: refused), the new TAT or the earliest instant, now}, the
-- instants as decimal strings.

local G = 1000000000
local MAX = {18446744073, 709551615}

local function parse(text)
  if not text or text == '' then
    return {0, 0}
  end
  local length = #text
  if length <= 9 then
    return {0, tonumber(text)}
  end
  return {tonumber(string.sub(text, 1, length - 9)), tonumber(string.sub(text, length - 8))}
end

local function add(a, b)
  local low = a[2] + b[2]
  if low >= G then
    return {a[1] + b[1] + 1, low - G}
  end
  return {a[1] + b[1], low}
end

-- a - b, for a >= b.
local function sub(a, b)
  local low = a[2] - b[2]
  if low < 0 then
    return {a[1] - b[1] - 1, low + G}
  end
  return {a[1] - b[1], low}
end

local function less(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end

local function show(a)
  if a[1] == 0 then
    return string.format('%d', a[2])
  end
  return string.format('%d%09d', a[1], a[2])
end

local now
if ARGV[1] ~= '' then
  now = parse(ARGV[1])
else
  local time = redis.call('TIME')
  now = {tonumber(time[1]), tonumber(time[2]) * 1000}
end
local interval = parse(ARGV[2])
local tolerance = parse(ARGV[3])
local cost = parse(ARGV[4])
local tat = parse(redis.call('GET', KEYS[1]))

local base = tat
if less(tat, now) then
  base = now
end
local limit = add(now, tolerance)
local own = add(base, cost)

-- Stores the TAT; the key expires once it is in the past, where it decides exactly as
-- an absent key does (base = now either way).
local function store(value)
  local ahead = sub(value, now)
  local millis = ahead[1] * 1000 + math.floor(ahead[2] / 1000000) + 1000
  redis.call('SET', KEYS[1], show(value), 'PX', millis)
end

if ARGV[5] == 'charge' then
  local charged = own
  if less(limit, charged) then
    charged = limit
  end
  if less(MAX, charged) then
    charged = MAX
  end
  if less(tat, charged) then
    store(charged)
  end
  return {0, show(charged), show(now)}
end

if less(MAX, own) then
  return {0, show(MAX), show(now)}
end
if less(limit, own) then
  return {0, show(sub(own, tolerance)), show(now)}
end
local admitted = tonumber(ARGV[6])
for _ = 1, tonumber(ARGV[7]) do
  local next = add(own, interval)
  if less(MAX, next) or less(limit, next) then
    break
  end
  own = next
  admitted = admitted + 1
end
store(own)
return {admitted, show(own), show(now)}
