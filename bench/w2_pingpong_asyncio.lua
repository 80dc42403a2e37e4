-- W2 ping-pong, asyncio flavor: two asyncio Tasks, M strict request/response
-- round trips over two asyncio.Queue(1) (the server answers request + 1).
-- usage: lua5.4 bench/w2_pingpong_asyncio.lua [M=200000]
-- Metric: round trips/s = M / wall time of the whole asyncio.run.
local asyncio = require "asyncio"
local uv = require "luv"
local Queue = asyncio.Queue or require("asyncio.queues").Queue

local M = tonumber(arg and arg[1]) or 200000

local function main()
  local req, rep = Queue(1), Queue(1)
  local server = asyncio.create_task(function()
    for _ = 1, M do rep:put(req:get() + 1) end
  end)
  for i = 1, M do
    req:put(i)
    local v = rep:get()
    if v ~= i + 1 then error(("W2: expected %d, got %s"):format(i + 1, tostring(v))) end
  end
  server:await()
end

local t0 = uv.hrtime()
asyncio.run(main)
local dt = (uv.hrtime() - t0) / 1e9
print(string.format("W2 ping-pong asyncio M=%d wall=%.3fs: %.6g round trips/s", M, dt, M / dt))
print(string.format("RESULT %.6g round trips/s", M / dt))
