-- Sliding log: the in-process `SlidingLog`.
-- KEYS[1]  sorted set of grants: member "<t ns>:<units>", score t in ms
-- KEYS[2]  "seen:sum" (newest time seen, units in the log)
-- ARGV     now ("" = TIME), W (ms), limit, cost, consume ("1"/"0"), margin (ms)
-- returns  {allowed, t_eff, now, grant, grant, ...} (the live grants, oldest first)
local now = clock(ARGV[1])
local W, limit, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local seen, sum = {0, 0}, 0
local v = redis.call('GET', KEYS[2])
if v then
  local a, b = string.match(v, '^(%d+):(%d+)$')
  seen, sum = parse(a), tonumber(b)
end
local t = max(now, seen)
-- Grants g with g + W <= t are out of the window: every g below
-- (t_ms − W) ms, and those in that millisecond at or below t − W exactly.
local edge = {t[1] - W, t[2]}
local expired, boundary = {}, {}
local dropped = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', edge[1])) do
  local g, u = string.match(m, '^(%d+):(%d+)$')
  local gt = parse(g)
  if lt(edge, gt) then break end
  expired[m] = true
  if gt[1] == edge[1] then boundary[#boundary + 1] = m end
  dropped = dropped + tonumber(u)
end
local live_sum = sum - dropped
local allowed = live_sum + cost <= limit
local consume = ARGV[5] == '1'
if consume then
  if dropped > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. edge[1])
    for _, m in ipairs(boundary) do redis.call('ZREM', KEYS[1], m) end
  end
  sum = live_sum
  if allowed then
    local tn = fmt(t)
    local last = redis.call('ZRANGE', KEYS[1], -1, -1)[1]
    local units = cost
    if last then
      local g, u = string.match(last, '^(%d+):(%d+)$')
      if g == tn then
        redis.call('ZREM', KEYS[1], last)
        units = units + tonumber(u)
      end
    end
    redis.call('ZADD', KEYS[1], t[1], tn .. ':' .. units)
    sum = sum + cost
  end
  if allowed or lt(seen, t) or dropped > 0 then
    -- Full again W after the newest grant.
    local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]
    local ms = 1
    if newest then ms = tonumber(newest) + W - t[1] + 1 end
    if ms < 1 then ms = 1 end
    local px = ms + tonumber(ARGV[6])
    redis.call('SET', KEYS[2], fmt(t) .. ':' .. sum, 'PX', px)
    if newest then redis.call('PEXPIRE', KEYS[1], px) end
  end
end
local out = {allowed and 1 or 0, fmt(t), fmt(now)}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if not expired[m] then out[#out + 1] = m end
end
return out
