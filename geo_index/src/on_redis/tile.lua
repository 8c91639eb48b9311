-- A tile (see the prelude): KEYS[1] its GEO set, KEYS[2] its records.
-- ARGV: now (Unix ms), tombstone keep (ms), then ops of 3 arguments, no
-- driver twice: `P id record` (put) or `D id <I8 version>` (remove), or
-- `S limit -`: sweep expired records and old tombstones.
local now = tonumber(ARGV[1])
if ARGV[3] == 'S' then
  return { sweep(KEYS[2], KEYS[1], now, tonumber(ARGV[4])) }
end
local puts, ids, payloads = {}, {}, {}
for i = 3, #ARGV, 3 do
  if ARGV[i] ~= 'P' and ARGV[i] ~= 'D' then
    return redis.error_reply('unknown op ' .. tostring(ARGV[i]))
  end
  puts[#puts + 1] = ARGV[i] == 'P'
  ids[#ids + 1] = ARGV[i + 1]
  payloads[#payloads + 1] = ARGV[i + 2]
end
return { tile_apply(KEYS[1], KEYS[2], puts, ids, payloads, now, tonumber(ARGV[2])) }
