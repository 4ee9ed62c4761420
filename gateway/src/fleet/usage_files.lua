-- An account's static-asset files across the fleet, counted as the platform counts
-- them: one account-wide set of content hashes, a file already held (or carried by an
-- upload in flight) counting once.
--   KEYS[1] hash: content hash -> bytes, the files the account holds
--   KEYS[2] sorted set: content hashes of uploads in flight, scored by deadline (ms)
--   KEYS[3] hash: content hash -> number of uploads in flight carrying it
--   ARGV[1] 'reserve' | 'settle' | 'release'
--   ARGV[2] reservation lifetime (ms), ARGV[3] key retention (ms), ARGV[4] max files
--   ARGV[5..] reserve, release: content hashes; settle: content hash, bytes, ...
-- reserve returns {1, 0} when every file fits (and reserves them), or {0, current}
-- for the first new file over the limit (nothing reserved); the others return {1, 0}.
local held, flight, refs = KEYS[1], KEYS[2], KEYS[3]
local mode = ARGV[1]
local retention = tonumber(ARGV[3])
local function drop(h)
  local n = redis.call('HINCRBY', refs, h, -1)
  if n <= 0 then
    redis.call('HDEL', refs, h)
    redis.call('ZREM', flight, h)
  end
end
if mode == 'reserve' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local deadline = now + tonumber(ARGV[2])
  local max = tonumber(ARGV[4])
  redis.call('ZREMRANGEBYSCORE', flight, '-inf', now)
  local count = redis.call('HLEN', held) + redis.call('ZCARD', flight)
  local new = {}
  for i = 5, #ARGV do
    local h = ARGV[i]
    if redis.call('HEXISTS', held, h) == 0 and not redis.call('ZSCORE', flight, h) and not new[h] then
      if count >= max then
        return {0, count}
      end
      count = count + 1
      new[h] = true
    end
  end
  for i = 5, #ARGV do
    local h = ARGV[i]
    if redis.call('HEXISTS', held, h) == 0 then
      if new[h] then
        redis.call('HSET', refs, h, 1)
        new[h] = false
      else
        redis.call('HINCRBY', refs, h, 1)
      end
      redis.call('ZADD', flight, 'GT', deadline, h)
    end
  end
  redis.call('PEXPIRE', flight, retention)
  redis.call('PEXPIRE', refs, retention)
  return {1, 0}
elseif mode == 'settle' then
  for i = 5, #ARGV, 2 do
    local h = ARGV[i]
    redis.call('HSET', held, h, ARGV[i + 1])
    redis.call('HDEL', refs, h)
    redis.call('ZREM', flight, h)
  end
  redis.call('PEXPIRE', held, retention)
  return {1, 0}
else
  for i = 5, #ARGV do
    drop(ARGV[i])
  end
  return {1, 0}
end
