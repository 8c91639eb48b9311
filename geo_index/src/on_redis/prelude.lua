-- The Redis driver index's record logic, shared by its scripts (each
-- script is this prelude followed by its entry point).
--
-- Directory records (authoritative, one hash per bucket of driver ids, with
-- a version counter in field "v") and tile records (copies, one hash per
-- tile beside its GEO set) are 41 bytes: <I8 version, I8 updated (Unix ms),
-- I4 lon_q, I4 lat_q, I4 attrs, I8 ttl (ms), I1 custom-ttl, I4 tile>. A
-- record is live while now < updated + ttl. Every change of a driver takes
-- a new version from its bucket's counter, so a driver's versions only
-- grow (also across a removal and a new insert); a tile applies a driver's
-- changes in version order whatever order they arrive in, and a removal
-- leaves a tombstone (16 bytes: <I8 version, I8 keep-until ms>), so a put
-- delayed behind a later move out of the tile cannot bring the driver
-- back.
local REC = '<I8I8I4I4I4I8I1I4'
local CHUNK = 1000
local LON_STEP = 360 / 4294967296
local LAT_STEP = 180 / 4294967296

-- HMGET of `ids` (in chunks): the values, in order (false where none).
-- Every script call names a driver at most once (the client splits a batch
-- that names one twice into rounds), so each op reads its own entry.
local function read_each(key, ids)
  local out = {}
  for k = 1, #ids, CHUNK do
    local last = math.min(#ids, k + CHUNK - 1)
    local got = redis.call('HMGET', key, unpack(ids, k, last))
    for j = k, last do out[j] = got[j - k + 1] end
  end
  return out
end

local function write_all(cmd, key, args, per)
  for k = 1, #args, CHUNK * per do
    redis.call(cmd, key, unpack(args, k, math.min(#args, k + CHUNK * per - 1)))
  end
end

-- Applies directory ops to the bucket `key`, in order. ops[k] is 'U', 'C',
-- 'L', 'R' or 'G' for driver ids[k] with packed operands args[k]:
--   U <I8 at_ms, I4 lon_q, I4 lat_q, i4 attrs|-1, i8 ttl_ms|-1, I4 tile>
--   C <I1 expected, I1 new>   L <I1 eligible, I1 load, I1 max, I1 full>
--   F <I1 load, I1 full, I1 available>  (release: load down, full -> available)
-- (`ops` nil: every op is U.) Returns four arrays, one entry per op: code,
-- record, extra, tile. U: code 0 inserted / 1 moved (record: the new one,
-- extra: the old tile or -1, tile: the new one) or 2 stale; C and L: 1 won
-- (the new record) or 0 lost (the record); F: 1 (the new record); R: 1
-- (the old record, extra: the tombstone version); G: 1 (the record); C, L,
-- F, R and G: -1 when no live driver.
local function dir_apply(key, ops, ids, args, now, default_ttl, default_attrs)
  local raws = read_each(key, ids)
  local n = #ids
  local version = redis.call('HINCRBY', key, 'v', n) - n
  local codes, recs, extras, tiles = {}, {}, {}, {}
  local fields = {}
  for k = 1, n do
    -- ops == nil: every op is U (a batch of upserts).
    local op, id, arg = ops and ops[k] or 'U', ids[k], args[k]
    local raw = raws[k] or nil
    local cv, cu, cx, cy, ca, ct, cc, ctile
    local live = false
    if raw and #raw == 41 then
      cv, cu, cx, cy, ca, ct, cc, ctile = struct.unpack(REC, raw)
      live = now < cu + ct
    end
    local code, new, extra = -1, false, false
    if op == 'U' then
      local u, x, y, a, t, tile = struct.unpack('<I8I4I4i4i8I4', arg)
      if live then
        if a < 0 then a = ca end
        local c = 1
        if t < 0 then t, c = ct, cc end
        local newer
        if u ~= cu then newer = u > cu
        elseif x ~= cx then newer = x > cx
        elseif y ~= cy then newer = y > cy
        else newer = a > ca end
        if newer then
          version = version + 1
          code, new, extra = 1, struct.pack(REC, version, u, x, y, a, t, c, tile), ctile
          tiles[k] = tile
        else
          code = 2
        end
      else
        if a < 0 then a = default_attrs end
        local c = 1
        if t < 0 then t, c = default_ttl, 0 end
        version = version + 1
        code, new, extra = 0, struct.pack(REC, version, u, x, y, a, t, c, tile), ctile or -1
        tiles[k] = tile
      end
    elseif not live then
      code = -1
    elseif op == 'G' then
      code, recs[k] = 1, raw
    elseif op == 'C' then
      local expected, status = struct.unpack('<I1I1', arg)
      local cur = ca % 32
      if cur ~= expected then
        code, recs[k] = 0, raw
      else
        version = version + 1
        code, new = 1, struct.pack(REC, version, cu, cx, cy, ca - cur + status, ct, cc, ctile)
      end
    elseif op == 'L' then
      local eligible, add, max, full = struct.unpack('<I1I1I1I1', arg)
      local cur = ca % 32
      local load = math.floor(ca / 1048576) % 8
      if cur == eligible and load + add <= max then
        local a = ca + add * 1048576
        if load + add >= max then a = a - cur + full end
        version = version + 1
        code, new = 1, struct.pack(REC, version, cu, cx, cy, a, ct, cc, ctile)
      else
        code, recs[k] = 0, raw
      end
    elseif op == 'F' then
      local drop, full, available = struct.unpack('<I1I1I1', arg)
      local cur = ca % 32
      local load = math.floor(ca / 1048576) % 8
      local a = ca - math.min(load, drop) * 1048576
      if cur == full then a = a - cur + available end
      version = version + 1
      code, new = 1, struct.pack(REC, version, cu, cx, cy, a, ct, cc, ctile)
    elseif op == 'R' then
      version = version + 1
      write_all('HSET', key, fields, 2)
      fields = {}
      redis.call('HDEL', key, id)
      code, recs[k], extra = 1, raw, version
    else
      return nil, 'unknown op ' .. tostring(op)
    end
    if new then
      recs[k] = new
      fields[#fields + 1] = id
      fields[#fields + 1] = new
    end
    codes[k], extras[k] = code, extra
  end
  write_all('HSET', key, fields, 2)
  return codes, recs, extras, tiles
end

local function version_of(rec)
  if not rec or #rec < 8 then return -1 end
  return (struct.unpack('<I8', rec))
end

-- Applies tile ops to the GEO set `geo_key` and records hash `rec_key`:
-- puts[k] true: put record payloads[k] of driver ids[k]; false: remove it,
-- payloads[k] being the removal's <I8 version>. Returns how many applied
-- (a driver appears at most once per call).
local function tile_apply(geo_key, rec_key, puts, ids, payloads, now, keep)
  local held = read_each(rec_key, ids)
  local final = {}
  for k = 1, #ids do
    if version_of(held[k]) < version_of(payloads[k]) then
      final[#final + 1] = puts[k] and k or -k
    end
  end
  local geo, recs, gone = {}, {}, {}
  for _, k in ipairs(final) do
    local id = ids[k < 0 and -k or k]
    if k > 0 then
      local rec = payloads[k]
      local _, _, x, y = struct.unpack('<I8I8I4I4', rec)
      geo[#geo + 1] = (x + 0.5) * LON_STEP - 180
      geo[#geo + 1] = (y + 0.5) * LAT_STEP - 90
      geo[#geo + 1] = id
      recs[#recs + 1] = id
      recs[#recs + 1] = rec
    else
      gone[#gone + 1] = id
      recs[#recs + 1] = id
      recs[#recs + 1] = struct.pack('<I8I8', version_of(payloads[-k]), now + keep)
    end
  end
  write_all('GEOADD', geo_key, geo, 3)
  write_all('HSET', rec_key, recs, 2)
  write_all('ZREM', geo_key, gone, 1)
  return #final
end

-- Deletes the records of hash `rec_key` that expired by `now` (and old
-- tombstones), at most `limit`; expired members leave `geo_key` too when
-- given. Returns how many.
local function sweep(rec_key, geo_key, now, limit)
  local all = redis.call('HGETALL', rec_key)
  local expired, gone = {}, {}
  for k = 1, #all, 2 do
    if #gone >= limit then break end
    local f, rec = all[k], all[k + 1]
    if f ~= 'v' then
      local dead
      if #rec == 41 then
        local _, u, _, _, _, t = struct.unpack('<I8I8I4I4I4I8', rec)
        dead = now >= u + t
        if dead then expired[#expired + 1] = f end
      elseif #rec == 16 then
        local _, until_ms = struct.unpack('<I8I8', rec)
        dead = now >= until_ms
      else
        dead = true
      end
      if dead then gone[#gone + 1] = f end
    end
  end
  if geo_key then write_all('ZREM', geo_key, expired, 1) end
  write_all('HDEL', rec_key, gone, 1)
  return #gone
end

-- A single server's sweep of directory bucket `key`: expired records leave
-- the bucket and their tile's GEO set. Returns how many.
local function sweep_single(key, prefix, now, limit)
  local all = redis.call('HGETALL', key)
  local gone, by_tile = {}, {}
  for k = 1, #all, 2 do
    if #gone >= limit then break end
    local f, rec = all[k], all[k + 1]
    if f ~= 'v' then
      local dead, tile = true, nil
      if #rec == 41 then
        local _, u, _, _, _, t, _, tl = struct.unpack(REC, rec)
        dead, tile = now >= u + t, tl
      end
      if dead then
        gone[#gone + 1] = f
        if tile then
          local t = by_tile[tile]
          if not t then t = {}; by_tile[tile] = t end
          t[#t + 1] = f
        end
      end
    end
  end
  for tile, ids in pairs(by_tile) do
    write_all('ZREM', '{' .. prefix .. ':t' .. string.format('%d', tile) .. '}g', ids, 1)
  end
  write_all('HDEL', key, gone, 1)
  return #gone
end
