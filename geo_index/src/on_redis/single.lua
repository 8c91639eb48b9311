-- Every write on a single server, in one call (see the prelude): on a
-- single server the directory is the only copy of a driver's record, and
-- the tiles' GEO sets are its spatial index, kept in step inside the same
-- script (a single server lets a script reach keys of any slot; on a
-- Cluster the client runs dir.lua, then tile.lua, per slot instead).
-- ARGV: now (Unix ms), default TTL (ms), default attributes (packed),
-- prefix, a mode, then per bucket: bucket number, count n, and n ops.
-- A call names each driver at most once (the client splits a batch that
-- names one twice into rounds). Mode `B` (a batch of upserts): the
-- bucket's n ops are one argument, n times <B len, id (decimal), 32 bytes of packed U operands, B len, the
-- position's 52-bit geohash (decimal): its GEO score> (one argument, not
-- 3n: the server parses and the script converts one string), and the
-- result per bucket is the ops' codes (0 inserted, 1 moved, 2 stale).
-- Mode `O` (any ops): each op is 4 arguments (code, driver id, packed
-- operands, geohash or `-`), and the result per bucket is dir_apply's.
-- Mode `S limit bucket…` sweeps those buckets instead (a count per bucket).
local now = tonumber(ARGV[1])
local default_ttl, default_attrs = tonumber(ARGV[2]), tonumber(ARGV[3])
local prefix = ARGV[4]
if ARGV[5] == 'S' then
  local counts = {}
  for i = 7, #ARGV do
    counts[#counts + 1] = sweep_single('{' .. prefix .. ':d' .. ARGV[i] .. '}', prefix, now,
      tonumber(ARGV[6]))
  end
  return counts
end
local function geo_key(tile)
  return '{' .. prefix .. ':t' .. string.format('%d', tile) .. '}g'
end
local adds, drops = {}, {}
local function add(tile, score, id)
  local t = adds[tile]
  if not t then t = {}; adds[tile] = t end
  t[#t + 1] = score
  t[#t + 1] = id
end
local function drop(tile, id)
  local t = drops[tile]
  if not t then t = {}; drops[tile] = t end
  t[#t + 1] = id
end
local batch = ARGV[5] == 'B'
local out = {}
local i = 6
while i <= #ARGV do
  local bucket, n = ARGV[i], tonumber(ARGV[i + 1])
  local ops, ids, args, scores = nil, {}, {}, {}
  local next_i
  if batch then
    local blob, pos = ARGV[i + 2], 1
    for k = 1, n do
      ids[k], args[k], scores[k], pos = struct.unpack('Bc0c32Bc0', blob, pos)
    end
    next_i = i + 3
  else
    next_i = i + 2 + 4 * n
    ops = {}
    for k = 1, n do
      local j = i + 2 + 4 * (k - 1)
      ops[k], ids[k], args[k], scores[k] = ARGV[j], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]
    end
  end
  local codes, recs, extras, tiles = dir_apply('{' .. prefix .. ':d' .. bucket .. '}', ops, ids,
    args, now, default_ttl, default_attrs)
  if not codes then return redis.error_reply(recs) end
  for k = 1, n do
    local tile = tiles[k]
    if tile then
      local old = extras[k]
      if old >= 0 and old ~= tile then drop(old, ids[k]) end
      add(tile, scores[k], ids[k])
    elseif ops and ops[k] == 'R' and codes[k] == 1 then
      drop(struct.unpack('<I4', recs[k], 38), ids[k])
    end
  end
  if batch then
    out[#out + 1] = codes
  else
    local res = {}
    for k = 1, n do res[k] = { codes[k], recs[k] or '', extras[k] or -1 } end
    out[#out + 1] = res
  end
  i = next_i
end
-- Removals first: a driver that left tile A and came back within the call
-- is re-added below.
for tile, members in pairs(drops) do write_all('ZREM', geo_key(tile), members, 1) end
local registered = {}
for tile, members in pairs(adds) do
  write_all('ZADD', geo_key(tile), members, 2)
  registered[#registered + 1] = tile
end
if #registered > 0 then
  write_all('SADD', '{' .. prefix .. '}:tiles', registered, 1)
end
return out
