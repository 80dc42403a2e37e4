-- W1 spawn, Trio flavor: N tasks started with nursery:start_soon, each doing
-- one checkpoint (trio.sleep(0)); the nursery joins them all.
-- usage: lua5.4 bench/w1_spawn.lua [N=100000]   (from the repo root, with
--        LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;")
-- Metric: tasks/s = N / wall time of the whole trio.run (start-up and
-- teardown of the run included, interpreter start and require excluded).
local trio = require "trio"
local has_luv, uv = pcall(require, "luv") -- luv only as a wall clock
local now = has_luv and function() return uv.hrtime() / 1e9 end or os.time

local N = tonumber(arg and arg[1]) or 100000

local t0 = now()
trio.run(function()
  trio.open_nursery(function(nursery)
    for _ = 1, N do nursery:start_soon(trio.sleep, 0) end
  end)
end)
local dt = now() - t0
print(string.format("W1 spawn trio N=%d wall=%.3fs: %.6g tasks/s", N, dt, N / dt))
print(string.format("RESULT %.6g tasks/s", N / dt))
