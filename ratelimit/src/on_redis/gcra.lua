-- GCRA on Redis: the in-process `Gcra` cell, one Redis key per limited key.
--
-- KEYS     the keys' states, "TAT s:TAT ns:seen s:seen ns" (seconds and
--          nanoseconds since the Unix epoch; absent = never charged, full);
--          several keys are checked in order, each on its own, with the
--          same arguments
-- ARGV     now s, now ns ("" "" = the server's TIME), cost×T s, ns,
--          τ+T s, ns, τ s, ns, consume ("1" / "0"), expiry margin (ms)
--          then, for one key, optional smaller costs to fall back to
--          (cost×T s, ns pairs, largest first: a lease takes the largest
--          that fits)
-- returns  per key: allowed (0/1), TAT s, TAT ns, t_eff s, t_eff ns;
--          then now s, now ns (integers); with fallback costs, then the
--          index of the cost charged (0: the first; -1: none)
--
-- Times exceed 2^53 ns, beyond what Lua's doubles hold exactly, so every
-- time is a pair (seconds, nanoseconds) of exact integers, added and
-- compared as such; every other number of the decision is derived in Rust
-- from these, with the same code as in-process.
local B = 1000000000

local ns_, nn_
if ARGV[1] == '' then
  local t = redis.call('TIME')
  ns_, nn_ = tonumber(t[1]), tonumber(t[2]) * 1000
else
  ns_, nn_ = tonumber(ARGV[1]), tonumber(ARGV[2])
end
local is_, in_ = tonumber(ARGV[3]), tonumber(ARGV[4])   -- cost × T
local ts_, tn_ = tonumber(ARGV[5]), tonumber(ARGV[6])   -- τ + T
local us_, un_ = tonumber(ARGV[7]), tonumber(ARGV[8])   -- τ
local consume = ARGV[9] == '1'
local margin = tonumber(ARGV[10])

-- a < b for pairs
local function lt(as, an, bs, bn) return as < bs or (as == bs and an < bn) end

-- Fallback costs (leases): take the largest that fits.
local chosen = 0
if #ARGV > 10 and #KEYS == 1 then
  local v = redis.call('GET', KEYS[1])
  local as, an, ss, sn = 0, 0, 0, 0
  if v then
    local a, b, c, d = string.match(v, '^(%d+):(%d+):(%d+):(%d+)$')
    as, an, ss, sn = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  end
  local es, en = ns_, nn_
  if lt(es, en, ss, sn) then es, en = ss, sn end
  local ys, yn = es + ts_, en + tn_
  if yn >= B then ys, yn = ys + 1, yn - B end
  local cands = {{is_, in_}}
  for a = 11, #ARGV - 1, 2 do
    cands[#cands + 1] = {tonumber(ARGV[a]), tonumber(ARGV[a + 1])}
  end
  chosen = -1
  for j = 1, #cands do
    local cs, cn = cands[j][1], cands[j][2]
    local xs, xn = as + cs, an + cn
    if xn >= B then xs, xn = xs + 1, xn - B end
    if not lt(ys, yn, xs, xn) then
      chosen = j - 1
      is_, in_ = cs, cn
      break
    end
  end
  -- None fits: decide (deny) the smallest.
  if chosen == -1 then is_, in_ = cands[#cands][1], cands[#cands][2] end
end

local out = {}
for k = 1, #KEYS do
  local key = KEYS[k]
  local as, an, ss, sn = 0, 0, 0, 0   -- TAT, seen
  local v = redis.call('GET', key)
  if v then
    local a, b, c, d = string.match(v, '^(%d+):(%d+):(%d+):(%d+)$')
    as, an, ss, sn = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  end
  -- An older `now` counts as no time passed: t_eff = max(now, seen).
  local es, en = ns_, nn_
  if lt(es, en, ss, sn) then es, en = ss, sn end
  -- Granted iff TAT + cost·T <= t_eff + τ + T.
  local xs, xn = as + is_, an + in_
  if xn >= B then xs, xn = xs + 1, xn - B end
  local ys, yn = es + ts_, en + tn_
  if yn >= B then ys, yn = ys + 1, yn - B end
  local allowed = not lt(ys, yn, xs, xn)
  if consume then
    local write = false
    if allowed then
      -- TAT ← max(TAT, t_eff) + cost·T
      if lt(as, an, es, en) then as, an = es, en end
      as, an = as + is_, an + in_
      if an >= B then as, an = as + 1, an - B end
      write = true
    end
    -- Record `now` as the newest time seen when it leaves a unit available
    -- (TAT <= now + τ); otherwise no unit is available at it and `seen`
    -- already stands for it (the in-process rule, proved there).
    local zs, zn = ns_ + us_, nn_ + un_
    if zn >= B then zs, zn = zs + 1, zn - B end
    if lt(ss, sn, ns_, nn_) and not lt(zs, zn, as, an) then
      ss, sn = ns_, nn_
      write = true
    end
    if write then
      -- From TAT on the state equals a new key's: expire then (plus a
      -- margin for injected times and clock steps).
      local ms = 1
      if lt(ns_, nn_, as, an) then
        local ds, dn = as - ns_, an - nn_
        if dn < 0 then ds, dn = ds - 1, dn + B end
        ms = ds * 1000 + math.ceil(dn / 1000000)
      end
      redis.call('SET', key, string.format('%d:%d:%d:%d', as, an, ss, sn), 'PX', ms + margin)
    end
  end
  local n = #out
  out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] =
    allowed and 1 or 0, as, an, es, en
end
out[#out + 1], out[#out + 2] = ns_, nn_
if #ARGV > 10 then out[#out + 1] = chosen end
return out
