-- Fixed window: the in-process `FixedWindow`.
-- KEYS[1]  "window:count:seen"
-- ARGV     now ("" = TIME), W (ms), limit, cost, consume ("1"/"0"), margin (ms)
-- returns  {allowed, window, count, t_eff, now}
local now = clock(ARGV[1])
local W, limit, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local idx, count, seen = -1, 0, {0, 0}
local v = redis.call('GET', KEYS[1])
if v then
  local a, b, c = string.match(v, '^(%d+):(%d+):(%d+)$')
  idx, count, seen = tonumber(a), tonumber(b), parse(c)
end
-- An older `now` counts as no time passed.
local t = max(now, seen)
local cur = math.floor(t[1] / W)
if idx ~= cur then count = 0 end
local allowed = count + cost <= limit
if ARGV[5] == '1' and (allowed or lt(seen, t)) then
  if allowed then count = count + cost end
  local ms = (cur + 1) * W - t[1]
  redis.call('SET', KEYS[1], string.format('%d:%d:', cur, count) .. fmt(t),
    'PX', ms + tonumber(ARGV[6]))
end
return {allowed and 1 or 0, string.format('%d', cur), count, fmt(t), fmt(now)}
