-- W1 spawn, asyncio flavor: N Tasks created with asyncio.create_task, each
-- doing one asyncio.sleep(0); asyncio.gather joins them.  With the argument
-- "bridged" the same runs on a trio_asyncio.open_loop loop (W6b).
-- usage: lua5.4 bench/w1_spawn_asyncio.lua [plain|bridged] [N=100000]
-- Metric: tasks/s over the whole run (loop start and teardown included).
local asyncio = require "asyncio"
local has_luv, uv = pcall(require, "luv") -- luv only as a wall clock
local now = has_luv and function() return uv.hrtime() / 1e9 end or os.time

local kind = arg and arg[1] or "plain"
local N = tonumber(arg and arg[2]) or 100000

local function main()
  local tasks = {}
  for i = 1, N do tasks[i] = asyncio.create_task(asyncio.sleep, 0) end
  asyncio.gather(table.unpack(tasks))
end

local t0 = now()
if kind == "bridged" then
  local ta = require "trio_asyncio"
  ta.run(function() ta.run_aio_coroutine(main) end)
else
  asyncio.run(main)
end
local dt = now() - t0
print(string.format("W1 spawn asyncio (%s) N=%d wall=%.3fs: %.6g tasks/s", kind, N, dt, N / dt))
print(string.format("RESULT %.6g tasks/s", N / dt))
