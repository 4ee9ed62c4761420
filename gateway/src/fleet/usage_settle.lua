-- Settles one reservation the platform answered 2xx, in one step: the resource joins
-- the account's set as the reservation leaves the in-flight set, so no reader sees the
-- slot free in between.
--   KEYS[1] set of the resources the account holds of that kind
--   KEYS[2] sorted set of reservations in flight
--   ARGV[1] reservation id ('' for an update, which reserved nothing)
--   ARGV[2] the resource's id or name
--   ARGV[3] key retention (ms)
if ARGV[1] ~= '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
