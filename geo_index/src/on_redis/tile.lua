-- A tile of the Redis driver index: the drivers whose position falls in
-- it, as a GEO set for GEOSEARCH, and their records (copies of the
-- directory's 41-byte records, see dir.lua).
-- KEYS[1]: GEO set   KEYS[2]: records hash
-- ARGV[1]: now (Unix ms)   ARGV[2]: how long a removal's tombstone is kept
-- (ms)   then ops of 3 arguments each, applied in order:
--   P id record        put the record (if newer than what the tile holds)
--   D id <I8 version>  remove (if newer): leaves a tombstone
--   S limit -          sweep expired records and old tombstones
-- A tile applies a driver's changes in version order: a record or a
-- tombstone (16 bytes: <I8 version, I8 keep-until ms>) with a version at
-- or above an arriving one makes it a no-op, so a put delayed behind a
-- later move out of the tile cannot bring the driver back. One HMGET
-- reads the tile's state of every driver of the call; one GEOADD, one
-- HSET and one ZREM write it. The GEO position is the centre of the
-- record's quantisation step, as the in-process index decodes it.
local now = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
local STRIDE = 3
local CHUNK = 1000
local LON_STEP = 360 / 4294967296
local LAT_STEP = 180 / 4294967296

local function version_of(rec)
  if not rec or #rec < 8 then return -1 end
  return (struct.unpack('<I8', rec))
end

if ARGV[3] == 'S' then
  local all = redis.call('HGETALL', KEYS[2])
  local limit = tonumber(ARGV[4])
  local expired, gone = {}, {}
  for k = 1, #all, 2 do
    if #gone >= limit then break end
    local rec = all[k + 1]
    local dead
    if #rec == 41 then
      local _, u, _, _, _, t = struct.unpack('<I8I8I4I4I4I8', rec)
      dead = now >= u + t
      if dead then expired[#expired + 1] = all[k] end
    elseif #rec == 16 then
      local _, until_ms = struct.unpack('<I8I8', rec)
      dead = now >= until_ms
    else
      dead = true
    end
    if dead then gone[#gone + 1] = all[k] end
  end
  for k = 1, #expired, CHUNK do
    redis.call('ZREM', KEYS[1], unpack(expired, k, math.min(#expired, k + CHUNK - 1)))
  end
  for k = 1, #gone, CHUNK do
    redis.call('HDEL', KEYS[2], unpack(gone, k, math.min(#gone, k + CHUNK - 1)))
  end
  return { #gone }
end

local nops = (#ARGV - 2) / STRIDE
local held = {}
do
  local ids = {}
  for k = 0, nops - 1 do ids[#ids + 1] = ARGV[3 + STRIDE * k + 1] end
  for k = 1, #ids, CHUNK do
    local last = math.min(#ids, k + CHUNK - 1)
    local raws = redis.call('HMGET', KEYS[2], unpack(ids, k, last))
    for j = k, last do
      if held[ids[j]] == nil then held[ids[j]] = version_of(raws[j - k + 1]) end
    end
  end
end
-- id -> argument index of its put, or -version for a removal
local final = {}
local applied = 0
for k = 0, nops - 1 do
  local i = 3 + STRIDE * k
  local op, id = ARGV[i], ARGV[i + 1]
  if op ~= 'P' and op ~= 'D' then
    return redis.error_reply('unknown op ' .. tostring(op))
  end
  local v = version_of(ARGV[i + 2])
  if held[id] < v then
    held[id] = v
    final[id] = op == 'P' and i or -v
    applied = applied + 1
  end
end

local geo, recs, gone = {}, {}, {}
local function flush(force)
  if #geo >= 3 * CHUNK or (force and #geo > 0) then
    redis.call('GEOADD', KEYS[1], unpack(geo))
    geo = {}
  end
  if #recs >= 2 * CHUNK or (force and #recs > 0) then
    redis.call('HSET', KEYS[2], unpack(recs))
    recs = {}
  end
  if #gone >= CHUNK or (force and #gone > 0) then
    redis.call('ZREM', KEYS[1], unpack(gone))
    gone = {}
  end
end
for id, i in pairs(final) do
  if i > 0 then
    local rec = ARGV[i + 2]
    local _, _, x, y = struct.unpack('<I8I8I4I4', rec)
    geo[#geo + 1] = (x + 0.5) * LON_STEP - 180
    geo[#geo + 1] = (y + 0.5) * LAT_STEP - 90
    geo[#geo + 1] = id
    recs[#recs + 1] = id
    recs[#recs + 1] = rec
  else
    gone[#gone + 1] = id
    recs[#recs + 1] = id
    recs[#recs + 1] = struct.pack('<I8I8', -i, now + keep)
  end
  flush(false)
end
flush(true)
return { applied }
