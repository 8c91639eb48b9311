-- A tile of the Redis driver index: the drivers whose position falls in
-- it, as a GEO set for GEOSEARCH, their records (copies of the directory's)
-- and expiry times.
-- KEYS[1]: GEO set   KEYS[2]: records hash   KEYS[3]: expiry sorted set
-- ARGV[1]: now (Unix ms)   ARGV[2]: how long a removal's tombstone is kept
-- (ms)   then ops of 5 arguments each:
--   P id record lon lat   put the record (if newer than what the tile holds)
--   D id version - -      remove (if newer): leaves a tombstone
--   S limit - - -         sweep expired records and tombstones
-- A tile applies a driver's changes in version order: a record or a
-- tombstone with a version at or above an arriving one makes it a no-op,
-- so a put delayed behind a later move out of the tile cannot bring the
-- driver back.
local now = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])

local function version_of(rec)
  if not rec then return -1 end
  return tonumber(string.match(rec, '^(%d+)')) or -1
end

local out = {}
local i = 3
while i <= #ARGV do
  local op, id = ARGV[i], ARGV[i + 1]
  if op == 'S' then
    local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(id))
    for _, m in ipairs(ids) do
      redis.call('ZREM', KEYS[1], m)
      redis.call('HDEL', KEYS[2], m)
      redis.call('ZREM', KEYS[3], m)
    end
    out[#out + 1] = #ids
  elseif op == 'P' then
    local rec = ARGV[i + 2]
    if version_of(redis.call('HGET', KEYS[2], id)) >= version_of(rec) then
      out[#out + 1] = 0
    else
      local u, t = string.match(rec, '^%d+:(%d+):%d+:%d+:%d+:(%d+):')
      redis.call('GEOADD', KEYS[1], ARGV[i + 3], ARGV[i + 4], id)
      redis.call('HSET', KEYS[2], id, rec)
      redis.call('ZADD', KEYS[3], tonumber(u) + tonumber(t), id)
      out[#out + 1] = 1
    end
  elseif op == 'D' then
    local v = tonumber(ARGV[i + 2])
    if version_of(redis.call('HGET', KEYS[2], id)) >= v then
      out[#out + 1] = 0
    else
      redis.call('ZREM', KEYS[1], id)
      redis.call('HSET', KEYS[2], id, ARGV[i + 2])
      redis.call('ZADD', KEYS[3], now + keep, id)
      out[#out + 1] = 1
    end
  else
    return redis.error_reply('unknown op ' .. tostring(op))
  end
  i = i + 5
end
return out
