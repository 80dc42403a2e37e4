-- W8 subprocesses: N=1000 `/bin/true` processes, P=10 at a time, each
-- spawned, waited for, and its exit code checked (0).
-- usage: lua5.4 bench/w8_processes.lua [trio|asyncio] [N=1000] [P=10]
--   trio:    trio.run_process({"/bin/true"}) in P tasks
--   asyncio: asyncio.create_subprocess_exec("/bin/true") + wait in P Tasks
-- Metric: processes/s = N / wall time of the whole run.
local has_luv, uv = pcall(require, "luv") -- luv only as a wall clock
local now = has_luv and function() return uv.hrtime() / 1e9 end or os.time

local kind = arg and arg[1] or "trio"
local N = tonumber(arg and arg[2]) or 1000
local P = tonumber(arg and arg[3]) or 10
local PER = N // P

local t0
if kind == "trio" then
  local trio = require "trio"
  t0 = now()
  trio.run(function()
    trio.open_nursery(function(nursery)
      for _ = 1, P do
        nursery:start_soon(function()
          for _ = 1, PER do
            assert(trio.run_process({ "/bin/true" }).returncode == 0)
          end
        end)
      end
    end)
  end)
elseif kind == "asyncio" then
  local asyncio = require "asyncio"
  t0 = now()
  asyncio.run(function()
    local workers = {}
    for i = 1, P do
      workers[i] = function()
        for _ = 1, PER do
          local p = asyncio.create_subprocess_exec("/bin/true")
          assert(p:wait() == 0)
        end
      end
    end
    asyncio.gather(table.unpack(workers))
  end)
else
  error("usage: w8_processes.lua [trio|asyncio] [N] [P]")
end
local dt = now() - t0
print(string.format("W8 %s: %d processes in %.3fs", kind, P * PER, dt))
print(string.format("RESULT %.6g processes/s", P * PER / dt))
