-- Shared by the window scripts. Times are pairs {ms, ns within the ms}
-- (milliseconds since the Unix epoch stay below 2^53, exact in Lua's
-- doubles); windows are whole milliseconds, aligned to the epoch.
local M = 1000000
local function parse(s)
  local n = #s
  if n <= 6 then return {0, tonumber(s)} end
  return {tonumber(string.sub(s, 1, n - 6)), tonumber(string.sub(s, n - 5))}
end
local function fmt(a)
  if a[1] == 0 then return string.format('%d', a[2]) end
  return string.format('%d%06d', a[1], a[2])
end
local function lt(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end
local function max(a, b) if lt(a, b) then return b end return a end
local function clock(arg)
  if arg == '' then
    local t = redis.call('TIME')
    local us = tonumber(t[2])
    return {tonumber(t[1]) * 1000 + math.floor(us / 1000), (us % 1000) * 1000}
  end
  return parse(arg)
end
