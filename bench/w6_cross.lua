-- W6 cross-flavor calls inside trio_asyncio.open_loop: K calls of
-- aio_as_trio(f)() from Trio, or K calls of trio_as_aio(g)() from an asyncio
-- Task, the wrapper made per call (as the peers do).  Only the K-call loop
-- is timed.
-- usage: lua5.4 bench/w6_cross.lua {aio_as_trio|trio_as_aio} [K=100000]
-- Metric: calls/s.
local ta = require "trio_asyncio"
local has_luv, uv = pcall(require, "luv") -- luv only as a wall clock
local now = has_luv and function() return uv.hrtime() / 1e9 end or os.time

local kind = arg and arg[1] or "aio_as_trio"
local K = tonumber(arg and arg[2]) or 100000
local function f() return 1 end

local dt = ta.run(function()
  if kind == "aio_as_trio" then
    local t0 = now()
    for _ = 1, K do assert(ta.aio_as_trio(f)() == 1) end
    return now() - t0
  end
  return ta.run_aio_coroutine(function()
    local t0 = now()
    for _ = 1, K do assert(ta.trio_as_aio(f)() == 1) end
    return now() - t0
  end)
end)
print(string.format("W6 %s K=%d loop=%.3fs: %.6g calls/s", kind, K, dt, K / dt))
print(string.format("RESULT %.6g calls/s", K / dt))
