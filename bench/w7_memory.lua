-- W7 memory: N tasks all sleeping 1 s at once.  "trio": in one nursery
-- (trio.sleep); "asyncio": N asyncio Tasks of asyncio.sleep(1), gathered
-- (as the peers' w7_memory.py asyncio).
-- Prints nothing: the metric is taken from outside, as for the peers:
-- (max RSS of this run with N - max RSS with N=0) / N, with
-- /usr/bin/time -f %M (bench/run.sh does it; lower is better).
-- usage: lua5.4 bench/w7_memory.lua [trio|asyncio] N   (from the repo root, with
--        LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;")
local kind = arg and arg[1] or "trio"
local N = tonumber(arg and arg[2]) or 100000

if kind == "asyncio" then
  local asyncio = require "asyncio"
  asyncio.run(function()
    local tasks = {}
    for i = 1, N do tasks[i] = asyncio.create_task(asyncio.sleep, 1) end
    asyncio.gather(table.unpack(tasks, 1, N))
  end)
else
  local trio = require "trio"
  trio.run(function()
    trio.open_nursery(function(nursery)
      for _ = 1, N do nursery:start_soon(trio.sleep, 1) end
    end)
  end)
end
