-- W4 timers, Trio flavor: N concurrent tasks in one nursery, task i sleeps
-- (i % 1000) / 10000 s (0 .. 99.9 ms), so the run cannot end before 0.1 s.
-- usage: lua5.4 bench/w4_timers.lua [N=100000]   (from the repo root, with
--        LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;")
-- Metric: overhead = wall time of the whole trio.run - 0.1 s (lower is better).
local trio = require "trio"
local has_luv, uv = pcall(require, "luv") -- luv only as a wall clock
local now = has_luv and function() return uv.hrtime() / 1e9 end or os.time

local N = tonumber(arg and arg[1]) or 100000

local t0 = now()
trio.run(function()
  trio.open_nursery(function(nursery)
    for i = 1, N do nursery:start_soon(trio.sleep, (i % 1000) / 10000) end
  end)
end)
local dt = now() - t0
print(string.format("W4 timers trio N=%d wall=%.3fs overhead: %.6g s", N, dt, dt - 0.1))
print(string.format("RESULT %.6g s", dt - 0.1))
