-- A directory bucket of the Redis driver index: the authoritative record of
-- each driver whose id hashes here, and the bucket's version counter.
-- KEYS[1]: the bucket hash (driver id -> record, "v" -> version counter)
-- KEYS[2]: the bucket's expiry sorted set (driver id -> expiry ms)
-- ARGV[1]: now (Unix ms)   ARGV[2]: default TTL (ms)   ARGV[3]: default
-- attributes (packed)   then ops of 8 arguments each:
--   U id at_ms lon_q lat_q attrs|-1 ttl_ms|-1 tile   insert or move
--   C id expected new - - - -                        status compare-and-set
--   L id eligible load max full - -                  load claim
--   R id - - - - - -                                 remove
--   G id - - - - - -                                 read
--   S limit - - - - - -                              sweep expired records
-- A record is "version:updated:lon_q:lat_q:attrs:ttl:custom:tile"; it is
-- live while now < updated + ttl. Every change takes a new version from
-- the bucket's counter, so versions of one driver only grow (also across
-- a removal and a new insert), and the tiles apply a driver's changes in
-- version order whatever order they arrive in.
local now = tonumber(ARGV[1])
local default_ttl = tonumber(ARGV[2])
local default_attrs = tonumber(ARGV[3])

local function parse(rec)
  if not rec then return nil end
  local v, u, x, y, a, t, c, tile =
    string.match(rec, '^(%d+):(%d+):(%d+):(%d+):(%d+):(%d+):(%d):(%d+)$')
  if not v then return nil end
  return { v = tonumber(v), u = tonumber(u), x = tonumber(x), y = tonumber(y),
           a = tonumber(a), t = tonumber(t), c = c, tile = tile }
end

local function fmt(r)
  return string.format('%d:%d:%d:%d:%d:%d:%s:%s', r.v, r.u, r.x, r.y, r.a, r.t, r.c, r.tile)
end

local function live(r)
  return r ~= nil and now < r.u + r.t
end

local function store(id, r)
  r.v = redis.call('HINCRBY', KEYS[1], 'v', 1)
  local s = fmt(r)
  redis.call('HSET', KEYS[1], id, s)
  redis.call('ZADD', KEYS[2], r.u + r.t, id)
  return s
end

-- The in-process index's version order: (updated, lon_q, lat_q, attrs).
local function newer(u, x, y, a, cur)
  if u ~= cur.u then return u > cur.u end
  if x ~= cur.x then return x > cur.x end
  if y ~= cur.y then return y > cur.y end
  return a > cur.a
end

local out = {}
local i = 4
while i <= #ARGV do
  local op, id = ARGV[i], ARGV[i + 1]
  if op == 'S' then
    local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(id))
    local n = 0
    for _, m in ipairs(ids) do
      local cur = parse(redis.call('HGET', KEYS[1], m))
      if not live(cur) then
        redis.call('HDEL', KEYS[1], m)
        redis.call('ZREM', KEYS[2], m)
        n = n + 1
      end
    end
    out[#out + 1] = n
  else
    local raw = redis.call('HGET', KEYS[1], id)
    local cur = parse(raw)
    if op == 'U' then
      local u, x, y = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
      local a, t = tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6])
      local old_tile = cur and cur.tile or ''
      local r = { u = u, x = x, y = y, tile = ARGV[i + 7] }
      local outcome
      if live(cur) then
        r.a = a >= 0 and a or cur.a
        if t >= 0 then r.t, r.c = t, '1' else r.t, r.c = cur.t, cur.c end
        outcome = 1
      else
        r.a = a >= 0 and a or default_attrs
        if t >= 0 then r.t, r.c = t, '1' else r.t, r.c = default_ttl, '0' end
        outcome = 0
      end
      if outcome == 1 and not newer(r.u, r.x, r.y, r.a, cur) then
        out[#out + 1] = { 2, raw, '' }
      else
        out[#out + 1] = { outcome, store(id, r), old_tile }
      end
    elseif not live(cur) then
      out[#out + 1] = { -1 }
    elseif op == 'G' then
      out[#out + 1] = { 1, raw }
    elseif op == 'C' then
      local status = cur.a % 32
      if status ~= tonumber(ARGV[i + 2]) then
        out[#out + 1] = { 0, raw }
      else
        cur.a = cur.a - status + tonumber(ARGV[i + 3])
        out[#out + 1] = { 1, store(id, cur) }
      end
    elseif op == 'L' then
      local status = cur.a % 32
      local load = math.floor(cur.a / 1048576) % 8
      local add, max = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
      if status == tonumber(ARGV[i + 2]) and load + add <= max then
        cur.a = cur.a + add * 1048576
        if load + add >= max then
          cur.a = cur.a - status + tonumber(ARGV[i + 5])
        end
        out[#out + 1] = { 1, store(id, cur) }
      else
        out[#out + 1] = { 0, raw }
      end
    elseif op == 'R' then
      redis.call('HDEL', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
      out[#out + 1] = { 1, raw, redis.call('HINCRBY', KEYS[1], 'v', 1) }
    else
      return redis.error_reply('unknown op ' .. tostring(op))
    end
  end
  i = i + 8
end
return out
