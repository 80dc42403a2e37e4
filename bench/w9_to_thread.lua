-- W9 threads: K=10000 calls of a trivial function (x + 1) on a worker
-- thread, T=4 tasks calling in turn.
-- usage: lua5.4 bench/w9_to_thread.lua [trio|asyncio] [K=10000] [T=4]
--   trio:    trio.to_thread.run_sync(work, i)
--   asyncio: asyncio.to_thread(work, i)
-- Metric: calls/s = K / wall time of the whole run.
local has_luv, uv = pcall(require, "luv") -- luv only as a wall clock
local now = has_luv and function() return uv.hrtime() / 1e9 end or os.time

local kind = arg and arg[1] or "trio"
local K = tonumber(arg and arg[2]) or 10000
local T = tonumber(arg and arg[3]) or 4
local PER = K // T

local function work(x) return x + 1 end

local t0
if kind == "trio" then
  local trio = require "trio"
  t0 = now()
  trio.run(function()
    trio.open_nursery(function(nursery)
      for _ = 1, T do
        nursery:start_soon(function()
          for i = 1, PER do assert(trio.to_thread.run_sync(work, i) == i + 1) end
        end)
      end
    end)
  end)
elseif kind == "asyncio" then
  local asyncio = require "asyncio"
  t0 = now()
  asyncio.run(function()
    local callers = {}
    for c = 1, T do
      callers[c] = function()
        for i = 1, PER do assert(asyncio.to_thread(work, i) == i + 1) end
      end
    end
    asyncio.gather(table.unpack(callers))
  end)
else
  error("usage: w9_to_thread.lua [trio|asyncio] [K] [T]")
end
local dt = now() - t0
print(string.format("W9 %s: %d to_thread calls in %.3fs", kind, T * PER, dt))
print(string.format("RESULT %.6g calls/s", T * PER / dt))
