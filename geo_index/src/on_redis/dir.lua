-- A directory bucket of the Redis driver index: the authoritative record of
-- each driver whose id hashes here, and the bucket's version counter.
-- KEYS[1]: the bucket hash (driver id -> record, "v" -> version counter)
-- ARGV[1]: now (Unix ms)   ARGV[2]: default TTL (ms)   ARGV[3]: default
-- attributes (packed)   then ops of 3 arguments (code, driver id, packed
-- little-endian operands), applied in order:
--   U id <I8 at_ms, I4 lon_q, I4 lat_q, i4 attrs|-1, i8 ttl_ms|-1, I4 tile>
--   C id <I1 expected, I1 new>                      status compare-and-set
--   L id <I1 eligible, I1 load, I1 max, I1 full>     load claim
--   R id -                                           remove
--   G id -                                           read
--   S limit -                                        sweep expired records
-- A record is 41 bytes: <I8 version, I8 updated, I4 lon_q, I4 lat_q,
-- I4 attrs, I8 ttl, I1 custom-ttl, I4 tile>; it is live while now <
-- updated + ttl. Every change takes a new version from the bucket's
-- counter, so versions of one driver only grow (also across a removal and
-- a new insert), and the tiles apply a driver's changes in version order
-- whatever order they arrive in. One HMGET reads every driver of the call
-- and one HSET writes them back.
local now = tonumber(ARGV[1])
local default_ttl = tonumber(ARGV[2])
local default_attrs = tonumber(ARGV[3])
local REC = '<I8I8I4I4I4I8I1I4'
local STRIDE = 3
local CHUNK = 1000

local function parse(rec)
  if not rec or #rec ~= 41 then return nil end
  local v, u, x, y, a, t, c, tile = struct.unpack(REC, rec)
  return { v = v, u = u, x = x, y = y, a = a, t = t, c = c, tile = tile }
end

local function live(r)
  return r ~= nil and now < r.u + r.t
end

if ARGV[4] == 'S' then
  local all = redis.call('HGETALL', KEYS[1])
  local gone = {}
  local limit = tonumber(ARGV[5])
  for k = 1, #all, 2 do
    if #gone >= limit then break end
    local f = all[k]
    if f ~= 'v' and not live(parse(all[k + 1])) then gone[#gone + 1] = f end
  end
  for k = 1, #gone, CHUNK do
    redis.call('HDEL', KEYS[1], unpack(gone, k, math.min(#gone, k + CHUNK - 1)))
  end
  return { #gone }
end

local nops = (#ARGV - 3) / STRIDE
local state = {}
do
  local ids = {}
  for k = 0, nops - 1 do ids[#ids + 1] = ARGV[4 + STRIDE * k + 1] end
  for k = 1, #ids, CHUNK do
    local last = math.min(#ids, k + CHUNK - 1)
    local raws = redis.call('HMGET', KEYS[1], unpack(ids, k, last))
    for j = k, last do
      if state[ids[j]] == nil then state[ids[j]] = raws[j - k + 1] or false end
    end
  end
end
local version = redis.call('HINCRBY', KEYS[1], 'v', nops) - nops
local dirty, deleted = {}, {}

local function store(id, r)
  version = version + 1
  local s = struct.pack(REC, version, r.u, r.x, r.y, r.a, r.t, r.c, r.tile)
  state[id] = s
  dirty[id] = s
  deleted[id] = nil
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
for k = 0, nops - 1 do
  local i = 4 + STRIDE * k
  local op, id, arg = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local raw = state[id] or nil
  local cur = parse(raw)
  if op == 'U' then
    local u, x, y, a, t, tile = struct.unpack('<I8I4I4i4i8I4', arg)
    local old_tile = cur and cur.tile or -1
    local r = { u = u, x = x, y = y, tile = tile }
    if live(cur) then
      r.a = a >= 0 and a or cur.a
      if t >= 0 then r.t, r.c = t, 1 else r.t, r.c = cur.t, cur.c end
      if newer(u, x, y, r.a, cur) then
        out[#out + 1] = { 1, store(id, r), old_tile }
      else
        out[#out + 1] = { 2 }
      end
    else
      r.a = a >= 0 and a or default_attrs
      if t >= 0 then r.t, r.c = t, 1 else r.t, r.c = default_ttl, 0 end
      out[#out + 1] = { 0, store(id, r), old_tile }
    end
  elseif not live(cur) then
    out[#out + 1] = { -1 }
  elseif op == 'G' then
    out[#out + 1] = { 1, raw }
  elseif op == 'C' then
    local expected, new = struct.unpack('<I1I1', arg)
    local status = cur.a % 32
    if status ~= expected then
      out[#out + 1] = { 0, raw }
    else
      cur.a = cur.a - status + new
      out[#out + 1] = { 1, store(id, cur) }
    end
  elseif op == 'L' then
    local eligible, add, max, full = struct.unpack('<I1I1I1I1', arg)
    local status = cur.a % 32
    local load = math.floor(cur.a / 1048576) % 8
    if status == eligible and load + add <= max then
      cur.a = cur.a + add * 1048576
      if load + add >= max then
        cur.a = cur.a - status + full
      end
      out[#out + 1] = { 1, store(id, cur) }
    else
      out[#out + 1] = { 0, raw }
    end
  elseif op == 'R' then
    version = version + 1
    state[id] = false
    dirty[id] = nil
    deleted[id] = true
    out[#out + 1] = { 1, raw, version }
  else
    return redis.error_reply('unknown op ' .. tostring(op))
  end
end

local args = {}
for id, s in pairs(dirty) do
  args[#args + 1] = id
  args[#args + 1] = s
  if #args >= 2 * CHUNK then
    redis.call('HSET', KEYS[1], unpack(args))
    args = {}
  end
end
if #args > 0 then redis.call('HSET', KEYS[1], unpack(args)) end
local gone = {}
for id in pairs(deleted) do gone[#gone + 1] = id end
for k = 1, #gone, CHUNK do
  redis.call('HDEL', KEYS[1], unpack(gone, k, math.min(#gone, k + CHUNK - 1)))
end
return out
