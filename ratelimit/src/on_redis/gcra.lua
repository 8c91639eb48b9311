-- GCRA on Redis: the in-process `Gcra` cell, one key per limited key.
--
-- KEYS     the keys' states, "TAT:seen" (decimal nanoseconds since the Unix
--          epoch; absent = never charged, full); several keys are checked
--          in order, each on its own, with the same arguments
-- ARGV[1]  now, decimal ns since the Unix epoch, or "" for the server's TIME
-- ARGV[2]  cost × T (ns)      ARGV[3]  τ + T (ns)      ARGV[4]  τ (ns)
-- ARGV[5]  "1" to consume when granted, "0" to peek
-- ARGV[6]  expiry margin, ms (kept past the instant the bucket is full again)
-- returns  {allowed (0/1), TAT in force, t_eff, now} per key  (decimal ns
--          strings), flattened
--
-- Times exceed 2^53 ns, beyond what Lua's doubles hold exactly, so they are
-- pairs {seconds, nanoseconds} with exact addition and comparison; every
-- other number of the decision is derived in Rust from these, with the same
-- code as in-process.
local B = 1000000000
local function parse(s)
  local n = #s
  if n <= 9 then return {0, tonumber(s)} end
  return {tonumber(string.sub(s, 1, n - 9)), tonumber(string.sub(s, n - 8))}
end
local function fmt(a)
  if a[1] == 0 then return string.format('%d', a[2]) end
  return string.format('%d%09d', a[1], a[2])
end
local function add(a, b)
  local s, n = a[1] + b[1], a[2] + b[2]
  if n >= B then s, n = s + 1, n - B end
  return {s, n}
end
local function lt(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end
local function max(a, b) if lt(a, b) then return b end return a end

-- One key's check: {allowed (0/1), TAT in force, t_eff, now}.
local function check(key, now, inc, tau_t, tau, consume, margin)
  local tat, seen = {0, 0}, {0, 0}
  local v = redis.call('GET', key)
  if v then
    local i = string.find(v, ':', 1, true)
    tat, seen = parse(string.sub(v, 1, i - 1)), parse(string.sub(v, i + 1))
  end
  -- An older `now` counts as no time passed.
  local t_eff = max(now, seen)
  -- Granted iff TAT + cost·T <= t_eff + τ + T.
  local allowed = not lt(add(t_eff, tau_t), add(tat, inc))
  if consume then
    local write = false
    if allowed then
      tat = add(max(tat, t_eff), inc)
      write = true
    end
    -- Record `now` as the newest time seen when it leaves a unit available
    -- (TAT <= now + τ); otherwise no unit is available at it and `seen`
    -- already stands for it (the in-process rule, proved there).
    if lt(seen, now) and not lt(add(now, tau), tat) then
      seen = now
      write = true
    end
    if write then
      -- From TAT on the state equals a new key's: expire then (plus a
      -- margin for injected times and clock steps).
      local ms = 1
      if lt(now, tat) then
        local ds, dn = tat[1] - now[1], tat[2] - now[2]
        if dn < 0 then ds, dn = ds - 1, dn + B end
        ms = ds * 1000 + math.ceil(dn / 1000000)
      end
      redis.call('SET', key, fmt(tat) .. ':' .. fmt(seen), 'PX', ms + margin)
    end
  end
  return {allowed and 1 or 0, fmt(tat), fmt(t_eff), fmt(now)}
end

local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = {tonumber(t[1]), tonumber(t[2]) * 1000}
else
  now = parse(ARGV[1])
end
local inc, tau_t, tau = parse(ARGV[2]), parse(ARGV[3]), parse(ARGV[4])
local consume, margin = ARGV[5] == '1', tonumber(ARGV[6])
if #KEYS == 1 then
  return check(KEYS[1], now, inc, tau_t, tau, consume, margin)
end
-- Several keys (all on this node): their replies in order, flattened.
local out = {}
for i = 1, #KEYS do
  local r = check(KEYS[i], now, inc, tau_t, tau, consume, margin)
  for j = 1, 4 do out[#out + 1] = r[j] end
end
return out
