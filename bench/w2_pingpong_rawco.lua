-- W2 floor: a raw Lua coroutine ping-pong, no scheduler and no channels.
-- A client and a server coroutine; a driver loop carries each request from
-- the client to the server and each reply back, so one round trip is two
-- resume/yield pairs, the least any scheduler can do for W2 (F0 counts one).
-- usage: lua5.4 bench/w2_pingpong_rawco.lua [M=200000]    Metric: round trips/s.
local uv = require "luv" -- a wall clock
local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield

local M = tonumber(arg and arg[1]) or 200000

local t0 = uv.hrtime()
local client = create(function()
  for i = 1, M do
    local v = yield(i)
    if v ~= i + 1 then error(("W2: expected %d, got %s"):format(i + 1, tostring(v))) end
  end
end)
local server = create(function(request)
  while true do request = yield(request + 1) end
end)
local _, request = resume(client)
for _ = 1, M do
  local _, reply = resume(server, request)
  local ok, value = resume(client, reply)
  if not ok then error(value) end
  request = value
end
local dt = (uv.hrtime() - t0) / 1e9
print(string.format("W2 ping-pong raw coroutines M=%d wall=%.3fs: %.6g round trips/s", M, dt, M / dt))
print(string.format("RESULT %.6g round trips/s", M / dt))
