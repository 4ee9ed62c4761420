-- Check-and-reserve of one operation against every quota counter it touches, in one
-- step on the Redis that holds the account's counters (all of one account's keys share
-- the hash tag {account}, so they live on one cluster node).
--
-- For each counter i (1-based):
--   KEYS[2i-1]  set of the resources the account holds of that kind (ids, script names)
--   KEYS[2i]    sorted set of reservations in flight, scored by their deadline (ms)
--   ARGV[2+2i]  the limit
--   ARGV[3+2i]  the script name of an update ('' when the platform assigns the id):
--               a name the account already holds reserves nothing
-- ARGV[1] reservation id, ARGV[2] reservation lifetime (ms), ARGV[3] key retention (ms)
-- (so the counters start at ARGV[4]).
--
-- Returns {1, reserved_any, 0} when every counter has room (and reserves in each that
-- needs it), or {0, i, current} for the first counter at its limit (nothing reserved).
-- Reservations past their deadline (a gateway that died before the answer) are dropped
-- first, so a crash cannot hold a slot for longer than the lifetime.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rid = ARGV[1]
local life = tonumber(ARGV[2])
local retention = tonumber(ARGV[3])
local n = #KEYS / 2
local take = {}
for i = 1, n do
  local held, flight = KEYS[2 * i - 1], KEYS[2 * i]
  local limit = tonumber(ARGV[2 + 2 * i])
  local name = ARGV[3 + 2 * i]
  redis.call('ZREMRANGEBYSCORE', flight, '-inf', now)
  if name ~= '' and redis.call('SISMEMBER', held, name) == 1 then
    take[i] = false
  else
    local current = redis.call('SCARD', held) + redis.call('ZCARD', flight)
    if current >= limit then
      return {0, i, current}
    end
    take[i] = true
  end
end
local any = 0
for i = 1, n do
  if take[i] then
    redis.call('ZADD', KEYS[2 * i], now + life, rid)
    redis.call('PEXPIRE', KEYS[2 * i], retention)
    any = 1
  end
end
return {1, any, 0}
