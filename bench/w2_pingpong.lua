-- W2 ping-pong, Trio flavor: two tasks, M strict request/response round trips
-- over two rendezvous channels (trio.open_memory_channel(0), one each way);
-- the server answers each request with request + 1.
-- usage: lua5.4 bench/w2_pingpong.lua [M=200000]   (from the repo root, with
--        LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;")
-- Metric: round trips/s = M / wall time of the whole trio.run.
local trio = require "trio"
local has_luv, uv = pcall(require, "luv") -- luv only as a wall clock
local now = has_luv and function() return uv.hrtime() / 1e9 end or os.time

local M = tonumber(arg and arg[1]) or 200000

local t0 = now()
trio.run(function()
  local req_tx, req_rx = trio.open_memory_channel(0)
  local rep_tx, rep_rx = trio.open_memory_channel(0)
  trio.open_nursery(function(nursery)
    nursery:start_soon(function() -- server
      for _ = 1, M do rep_tx:send(req_rx:receive() + 1) end
    end)
    for i = 1, M do -- client
      req_tx:send(i)
      local v = rep_rx:receive()
      if v ~= i + 1 then error(("W2: expected %d, got %s"):format(i + 1, tostring(v))) end
    end
  end)
end)
local dt = now() - t0
print(string.format("W2 ping-pong trio M=%d wall=%.3fs: %.6g round trips/s", M, dt, M / dt))
print(string.format("RESULT %.6g round trips/s", M / dt))
