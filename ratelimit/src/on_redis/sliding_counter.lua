-- Sliding window counter: the in-process `SlidingCounter`.
-- KEYS[1]  "window:prev:curr:seen"
-- ARGV     now ("" = TIME), W (ms), limit, cost, consume ("1"/"0"), margin (ms)
-- returns  {allowed, window, prev, curr, t_eff, now}
local now = clock(ARGV[1])
local W, limit, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local seen = {0, 0}
local idx, prev, curr = -2, 0, 0
local v = redis.call('GET', KEYS[1])
if v then
  local a, b, c, d = string.match(v, '^(%d+):(%d+):(%d+):(%d+)$')
  idx, prev, curr, seen = tonumber(a), tonumber(b), tonumber(c), parse(d)
end
local t = max(now, seen)
local cur = math.floor(t[1] / W)
local p, c = 0, 0
if idx == cur then p, c = prev, curr elseif idx + 1 == cur then p, c = curr, 0 end
-- Granted iff p·(W − e) ≤ (limit − c − cost)·W, e = t − cur·W in ns.
-- With e = em ms + sub ns: (p·(W − em) − A·W)·10^6 ≤ p·sub.
local A = limit - c - cost
local allowed
if A < 0 then
  allowed = false
elseif p == 0 then
  allowed = true
else
  local em = t[1] - cur * W
  allowed = p * (W - em) - A * W <= math.floor(p * t[2] / M)
end
if ARGV[5] == '1' and (allowed or lt(seen, t)) then
  if allowed then c = c + cost end
  -- Full again two windows after the last grant.
  local ms = (cur + 2) * W - t[1]
  redis.call('SET', KEYS[1], string.format('%d:%d:%d:', cur, p, c) .. fmt(t),
    'PX', ms + tonumber(ARGV[6]))
end
return {allowed and 1 or 0, string.format('%d', cur), p, c, fmt(t), fmt(now)}
