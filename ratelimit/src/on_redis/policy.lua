-- A policy on Redis: every rule of one subject's rule set checked at one
-- time and charged all or none — the in-process `PolicyLimiter` entry.
--
-- KEYS[1]  the entry's newest time seen, "s:ns"
-- KEYS[2…] each rule's state, in rule order (a sliding log has two keys:
--          its sorted set and its "seen:sum" twin, of which only the sum is
--          used here)
-- ARGV     now s, now ns ("" "" = TIME), cost, consume ("1"/"0"),
--          margin (ms), then 5 values per rule: a type and its parameters:
--          g (GCRA): cost×T s, ns, τ+T s, ns
--          f (fixed window), c (sliding counter), l (sliding log): W ms, limit
-- returns  fits, t_eff s, t_eff ns, now s, now ns, then per rule:
--          g: TAT s, TAT ns; f: window, count; c: window, prev, curr;
--          l: n, then n grants "ns:units" (live, oldest first)
-- All keys share the subject's hash tag: one slot, so this runs on a
-- Redis Cluster too.
local B, M = 1000000000, 1000000
local function lt(as, an, bs, bn) return as < bs or (as == bs and an < bn) end
local function add(as, an, bs, bn)
  local s, n = as + bs, an + bn
  if n >= B then s, n = s + 1, n - B end
  return s, n
end
-- ms since the epoch and ns within the ms, of (s, ns)
local function ms_of(s, n) return s * 1000 + math.floor(n / M), n % M end

local now_s, now_n
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now_s, now_n = tonumber(t[1]), tonumber(t[2]) * 1000
else
  now_s, now_n = tonumber(ARGV[1]), tonumber(ARGV[2])
end
local cost = tonumber(ARGV[3])
local consume = ARGV[4] == '1'
local margin = tonumber(ARGV[5])

local seen_s, seen_n = 0, 0
local v = redis.call('GET', KEYS[1])
if v then
  local a, b = string.match(v, '^(%d+):(%d+)$')
  seen_s, seen_n = tonumber(a), tonumber(b)
end
local es, en = now_s, now_n
if lt(es, en, seen_s, seen_n) then es, en = seen_s, seen_n end
local e_ms, e_sub = ms_of(es, en)

-- Phase 1: read every rule's state at t_eff, and whether cost fits.
local rules = {}
local fits = true
local k = 2
local nrules = (#ARGV - 5) / 5
for i = 1, nrules do
  local a = 5 + (i - 1) * 5
  local ty = ARGV[a + 1]
  local r = {ty = ty, key = KEYS[k]}
  if ty == 'g' then
    local is_, in_, ts_, tn_ = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
    r.is, r.in_ = is_, in_
    r.as, r.an = 0, 0
    local s = redis.call('GET', r.key)
    if s then
      local x, y = string.match(s, '^(%d+):(%d+)$')
      r.as, r.an = tonumber(x), tonumber(y)
    end
    local xs, xn = add(r.as, r.an, is_, in_)
    local ys, yn = add(es, en, ts_, tn_)
    r.fits = not lt(ys, yn, xs, xn)
    k = k + 1
  else
    local W, limit = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    r.W, r.limit = W, limit
    local cur = math.floor(e_ms / W)
    r.cur = cur
    if ty == 'f' then
      r.count = 0
      local s = redis.call('GET', r.key)
      if s then
        local x, y = string.match(s, '^(%d+):(%d+)$')
        if tonumber(x) == cur then r.count = tonumber(y) end
      end
      r.fits = r.count + cost <= limit
      k = k + 1
    elseif ty == 'c' then
      r.p, r.c = 0, 0
      local s = redis.call('GET', r.key)
      if s then
        local x, y, z = string.match(s, '^(%d+):(%d+):(%d+)$')
        local idx = tonumber(x)
        if idx == cur then r.p, r.c = tonumber(y), tonumber(z)
        elseif idx + 1 == cur then r.p, r.c = tonumber(z), 0 end
      end
      local A = limit - r.c - cost
      if A < 0 then r.fits = false
      elseif r.p == 0 then r.fits = true
      else r.fits = r.p * (W - (e_ms - cur * W)) - A * W <= math.floor(r.p * e_sub / M) end
      k = k + 1
    else
      r.sumkey = KEYS[k + 1]
      r.sum = 0
      local s = redis.call('GET', r.sumkey)
      if s then r.sum = tonumber(string.match(s, ':(%d+)$')) end
      -- Grants g with g + W <= t_eff are out of the window.
      local edge_ms = e_ms - W
      r.edge_ms = edge_ms
      r.expired, r.boundary, r.dropped = {}, {}, 0
      for _, m in ipairs(redis.call('ZRANGEBYSCORE', r.key, '-inf', edge_ms)) do
        local g, u = string.match(m, '^(%d+):(%d+)$')
        local gms, gsub = math.floor(tonumber(string.sub(g, 1, -7)) or 0), tonumber(string.sub(g, -6))
        if #g <= 6 then gms, gsub = 0, tonumber(g) end
        if gms > edge_ms or (gms == edge_ms and gsub > e_sub) then break end
        r.expired[m] = true
        if gms == edge_ms then r.boundary[#r.boundary + 1] = m end
        r.dropped = r.dropped + tonumber(u)
      end
      r.live = r.sum - r.dropped
      r.fits = r.live + cost <= limit
      k = k + 2
    end
  end
  fits = fits and r.fits
  rules[i] = r
end

-- Phase 2: charge every rule, or none; record the newest time seen.
local t_str = string.format('%d%06d', e_ms, e_sub)
if consume then
  local keep = 1
  for _, r in ipairs(rules) do
    local ms = 1
    if r.ty == 'g' then
      if fits then
        if lt(r.as, r.an, es, en) then r.as, r.an = es, en end
        r.as, r.an = add(r.as, r.an, r.is, r.in_)
      end
      if lt(es, en, r.as, r.an) then
        local ds, dn = r.as - es, r.an - en
        if dn < 0 then ds, dn = ds - 1, dn + B end
        ms = ds * 1000 + math.ceil(dn / M)
      end
      redis.call('SET', r.key, string.format('%d:%d', r.as, r.an), 'PX', ms + margin)
    elseif r.ty == 'f' then
      if fits then r.count = r.count + cost end
      ms = (r.cur + 1) * r.W - e_ms
      redis.call('SET', r.key, string.format('%d:%d', r.cur, r.count), 'PX', ms + margin)
    elseif r.ty == 'c' then
      if fits then r.c = r.c + cost end
      ms = (r.cur + 2) * r.W - e_ms
      redis.call('SET', r.key, string.format('%d:%d:%d', r.cur, r.p, r.c), 'PX', ms + margin)
    else
      if r.dropped > 0 then
        redis.call('ZREMRANGEBYSCORE', r.key, '-inf', '(' .. r.edge_ms)
        for _, m in ipairs(r.boundary) do redis.call('ZREM', r.key, m) end
      end
      r.sum = r.live
      if fits then
        local last = redis.call('ZRANGE', r.key, -1, -1)[1]
        local units = cost
        if last then
          local g, u = string.match(last, '^(%d+):(%d+)$')
          if g == t_str then
            redis.call('ZREM', r.key, last)
            units = units + tonumber(u)
          end
        end
        redis.call('ZADD', r.key, e_ms, t_str .. ':' .. units)
        r.sum = r.sum + cost
      end
      local newest = redis.call('ZRANGE', r.key, -1, -1, 'WITHSCORES')[2]
      if newest then ms = tonumber(newest) + r.W - e_ms + 1 end
      if ms < 1 then ms = 1 end
      redis.call('SET', r.sumkey, t_str .. ':' .. r.sum, 'PX', ms + margin)
      if newest then redis.call('PEXPIRE', r.key, ms + margin) end
    end
    if ms > keep then keep = ms end
  end
  redis.call('SET', KEYS[1], string.format('%d:%d', es, en), 'PX', keep + margin)
end

local out = {fits and 1 or 0, es, en, now_s, now_n}
for _, r in ipairs(rules) do
  if r.ty == 'g' then
    out[#out + 1], out[#out + 2] = r.as, r.an
  elseif r.ty == 'f' then
    out[#out + 1], out[#out + 2] = r.cur, r.count
  elseif r.ty == 'c' then
    out[#out + 1], out[#out + 2], out[#out + 3] = r.cur, r.p, r.c
  else
    local live = {}
    for _, m in ipairs(redis.call('ZRANGE', r.key, 0, -1)) do
      if not r.expired[m] then live[#live + 1] = m end
    end
    out[#out + 1] = #live
    for _, m in ipairs(live) do out[#out + 1] = m end
  end
end
return out
