-- One rate-limit decision of the fleet, atomic on one Redis server (or one Cluster slot).
--
-- GCRA, as the gateway's local limiter (governor) runs it: each bucket holds its
-- theoretical arrival time (TAT, microseconds on this server's clock, read with TIME
-- so that every gateway of the fleet counts on one clock). A request of cost c fits
-- a limit of interval t and burst b when now >= TAT + t*c - t*b; it then moves the
-- TAT to max(TAT, now) + t*c.
--
-- KEYS[i]   the bucket of limit i
-- ARGV[1]   "1": charge when no limit rule refuses; "0": probe only
-- ARGV[1 + 4(i-1) + 1 .. 4]  for limit i: interval in nanoseconds, burst, cost,
--           group ("s<n>" for a shadow rule's limits, "l<n>" for a limit rule's)
--
-- Every limit is probed first. If any limit rule's limit refuses, nothing is charged
-- (a client refused by one limit does not burn its other budgets). Otherwise every
-- limit of every rule whose limits all passed is charged; a shadow rule that would
-- refuse is not. A charged bucket expires when it is full again (TAT reached), so
-- idle clients leave nothing behind.
--
-- Returns, for each limit, two integers: 1 and the requests of cost 1 still fitting,
-- or 0 and the wait in microseconds until the request would fit.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local charge = ARGV[1] == '1'
local out = {}
local next_tat = {}
local group_refused = {}
local refused = false
for i = 1, #KEYS do
  local base = 1 + (i - 1) * 4
  local t = tonumber(ARGV[base + 1]) / 1000
  local burst = tonumber(ARGV[base + 2])
  local cost = tonumber(ARGV[base + 3])
  local group = ARGV[base + 4]
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  local earliest = tat + t * cost - t * burst
  if now < earliest then
    out[2 * i - 1] = 0
    out[2 * i] = math.ceil(earliest - now)
    group_refused[group] = true
    if string.sub(group, 1, 1) == 'l' then
      refused = true
    end
  else
    local nt = math.max(tat, now) + t * cost
    next_tat[i] = nt
    out[2 * i - 1] = 1
    out[2 * i] = math.floor((t * burst - (nt - now)) / t)
  end
end
if charge and not refused then
  for i = 1, #KEYS do
    local group = ARGV[1 + (i - 1) * 4 + 4]
    local nt = next_tat[i]
    if nt and not group_refused[group] then
      local ttl = math.max(1, math.ceil((nt - now) / 1000))
      redis.call('SET', KEYS[i], string.format('%.0f', nt), 'PX', ttl)
    end
  end
end
return out
