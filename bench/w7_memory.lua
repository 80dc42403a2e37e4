-- W7 memory, Trio flavor: N tasks in one nursery, all sleeping 1 s at once.
-- Prints nothing: the metric is taken from outside, as for the peers:
-- (max RSS of this run with N - max RSS with N=0) / N, with
-- /usr/bin/time -f %M (bench/run.sh does it; lower is better).
-- usage: lua5.4 bench/w7_memory.lua N   (from the repo root, with
--        LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;")
local trio = require "trio"

local N = tonumber(arg and arg[1]) or 100000

trio.run(function()
  trio.open_nursery(function(nursery)
    for _ = 1, N do nursery:start_soon(trio.sleep, 1) end
  end)
end)
