-- GEOSEARCH in one tile with the attribute filter and the expiry applied
-- inside: the `want` nearest (or farthest) live drivers that pass, not
-- "the `want` nearest, then filter".
-- KEYS[1]: GEO set   KEYS[2]: records hash (on a Cluster)
-- ARGV: now (Unix ms), lon, lat, radius (m), ASC|DESC, want (0: all),
-- status (-1: any), vehicle mask low 32 bits, high 32 bits, minimum rating
-- (hundredths), load bound (load < bound), and on a single server the
-- directory (prefix, bucket count, this tile): records are read from the
-- drivers' directory buckets, and a member whose record is elsewhere is a
-- leftover of a move (skipped).
-- Returns {exhausted (1: every member in the radius was examined), the
-- GEOSEARCH distance of the last member examined, id, record, id, record…}.
local now = tonumber(ARGV[1])
local want = tonumber(ARGV[6])
local status, vlo, vhi = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local min_rating, load_bound = tonumber(ARGV[10]), tonumber(ARGV[11])
local prefix, buckets, this_tile = ARGV[12], tonumber(ARGV[13]), tonumber(ARGV[14])

-- The records of `ids` (an array aligned with it; nil where absent).
local function records(ids)
  if not prefix then return redis.call('HMGET', KEYS[2], unpack(ids)) end
  local by_bucket = {}
  for j, id in ipairs(ids) do
    -- id mod buckets, digit by digit (ids can exceed Lua's exact integers).
    local b = 0
    for d = 1, #id do b = (b * 10 + string.byte(id, d) - 48) % buckets end
    local g = by_bucket[b]
    if not g then g = { ids = {}, at = {} }; by_bucket[b] = g end
    g.ids[#g.ids + 1] = id
    g.at[#g.at + 1] = j
  end
  local out = {}
  for b, g in pairs(by_bucket) do
    local recs = redis.call('HMGET', '{' .. prefix .. ':d' .. string.format('%d', b) .. '}',
      unpack(g.ids))
    for k, j in ipairs(g.at) do
      local rec = recs[k]
      if rec and #rec == 41 and struct.unpack('<I4', rec, 38) ~= this_tile then rec = nil end
      out[j] = rec or false
    end
  end
  return out
end

-- Attributes: status 5 bits, vehicle 6, rating 9, load 3 (see attrs.rs).
local function pass(a)
  if status >= 0 and a % 32 ~= status then return false end
  local vehicle = math.floor(a / 32) % 64
  local mask = vehicle < 32 and vlo or vhi
  if math.floor(mask / 2 ^ (vehicle % 32)) % 2 == 0 then return false end
  if math.floor(a / 2048) % 512 < min_rating then return false end
  return math.floor(a / 1048576) % 8 < load_bound
end

-- With a count and ASC, the walk starts at 1/16 of the radius and widens
-- it 4x at a time (a k-nearest walk: in a dense city the 10 nearest are a
-- few hundred metres away, and GEOSEARCH costs what its area holds); each
-- GEOSEARCH asks for 4x the wanted count, and 4x more while the filter
-- leaves it short. A member examined once is not examined again.
local radius = tonumber(ARGV[4])
local r = radius
if want > 0 and ARGV[5] == 'ASC' then r = math.min(radius, math.max(radius / 16, 100)) end
local out = { 0, '0' }
local found = 0
local count = want > 0 and want * 4 + 16 or 0
local visited = {}
while true do
  local res
  if count > 0 then
    res = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[2], ARGV[3],
      'BYRADIUS', r, 'm', ARGV[5], 'COUNT', count, 'WITHDIST')
  else
    res = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[2], ARGV[3],
      'BYRADIUS', r, 'm', ARGV[5], 'WITHDIST')
  end
  local n = #res
  local fresh = {}
  for k = 1, n do
    local id = res[k][1]
    if not visited[id] then
      visited[id] = true
      fresh[#fresh + 1] = k
    end
  end
  for from = 1, #fresh, 1000 do
    local to = math.min(#fresh, from + 999)
    local ids = {}
    for j = from, to do ids[#ids + 1] = res[fresh[j]][1] end
    local recs = records(ids)
    for j = 1, #ids do
      local rec = recs[j]
      if rec and #rec == 41 then
        local _, u, _, _, a, t = struct.unpack('<I8I8I4I4I4I8', rec)
        if now < u + t and pass(a) then
          out[#out + 1] = ids[j]
          out[#out + 1] = rec
          found = found + 1
        end
      end
    end
  end
  -- Enough: every member nearer than the last one examined was examined
  -- (the answer's members are the first `found` in distance order only
  -- after the client sorts them; it needs the last distance examined).
  if want > 0 and found >= want then
    out[2] = res[n][2]
    return out
  end
  if count > 0 and n >= count then
    count = count * 4
  elseif r < radius then
    r = math.min(radius, r * 4)
  else
    out[1] = 1
    return out
  end
end
