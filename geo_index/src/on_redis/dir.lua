-- A directory bucket (see the prelude): KEYS[1] the bucket hash.
-- ARGV: now (Unix ms), default TTL (ms), default attributes (packed), then
-- ops of 3 arguments (code, driver id, packed operands) applied in order,
-- no driver twice, or `S limit -`: sweep expired records.
local now = tonumber(ARGV[1])
if ARGV[4] == 'S' then
  return { sweep(KEYS[1], nil, now, tonumber(ARGV[5])) }
end
local ops, ids, args = {}, {}, {}
for i = 4, #ARGV, 3 do
  ops[#ops + 1] = ARGV[i]
  ids[#ids + 1] = ARGV[i + 1]
  args[#args + 1] = ARGV[i + 2]
end
local codes, recs, extras = dir_apply(KEYS[1], ops, ids, args, now, tonumber(ARGV[2]),
  tonumber(ARGV[3]))
if not codes then return redis.error_reply(recs) end
local out = {}
for k = 1, #codes do out[k] = { codes[k], recs[k] or '', extras[k] or -1 } end
return out
