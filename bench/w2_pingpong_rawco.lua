-- W2 floor: a raw Lua coroutine ping-pong, no scheduler and no channels.
-- A client and a server coroutine; a driver loop carries each request from
-- the client to the server and each reply back.
--   plain:       one round trip is two resume/yield pairs, the least any
--                scheduler can do for W2 (F0 counts one).
--   checkpoints: four resume/yield pairs per round trip, the switches Trio's
--                rules make a memory-channel ping-pong take (a send or a
--                receive that does not block is still a schedule point, so
--                each side runs twice per round trip; docs/ARCHITECTURE.md,
--                "What a W2 round trip costs"): the floor of a scheduler
--                that keeps those rules.
-- usage: lua5.4 bench/w2_pingpong_rawco.lua [M=200000] [plain|checkpoints]
-- Metric: round trips/s.
local uv = require "luv" -- a wall clock
local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield

local M = tonumber(arg and arg[1]) or 200000
local mode = arg and arg[2] or "plain"
if mode ~= "plain" and mode ~= "checkpoints" then
  error("usage: w2_pingpong_rawco.lua [M] [plain|checkpoints]")
end
local checkpoints = mode == "checkpoints"

local t0 = uv.hrtime()
local client = create(function()
  for i = 1, M do
    local v = yield(i) -- send (and, with checkpoints, its schedule point)
    if checkpoints then v = yield() end -- receive's schedule point; the reply comes with the next resume
    if v ~= i + 1 then error(("W2: expected %d, got %s"):format(i + 1, tostring(v))) end
  end
end)
local server = create(function(request)
  while true do
    if checkpoints then
      yield(request + 1) -- the send parks: the client is not receiving yet
      request = yield()  -- the receive parks until the next request
    else
      request = yield(request + 1)
    end
  end
end)
local _, request = resume(client)
for _ = 1, M do
  local _, reply = resume(server, request)
  if checkpoints then
    resume(client) -- back from its send: it receives, a schedule point
    resume(server) -- back from its send: it waits for the next request
  end
  local ok, value = resume(client, reply)
  if not ok then error(value) end
  request = value
end
local dt = (uv.hrtime() - t0) / 1e9
print(string.format("W2 ping-pong raw coroutines (%s) M=%d wall=%.3fs: %.6g round trips/s", mode, M, dt, M / dt))
print(string.format("RESULT %.6g round trips/s", M / dt))
