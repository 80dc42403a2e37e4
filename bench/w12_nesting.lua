-- W12 nesting depth: a chain of D nested levels, each a task that opens the
-- next level and waits for it; the innermost level signals that the chain is
-- built and waits forever; then the outermost level is cancelled and the
-- whole chain unwinds.  "trio": each level is a nursery with one child (the
-- cancel status tree is D deep); "asyncio": each level is a Task awaiting
-- the Task of the next level (cancellation travels down D awaits).
-- usage: lua5.4 bench/w12_nesting.lua [trio|asyncio] [D=10000] [ROUNDS=5]
-- Metric: levels/s = D * ROUNDS / wall time (build, cancel, unwind).
local uv = require "luv" -- a wall clock
local kind = arg and arg[1] or "trio"
local D = tonumber(arg and arg[2]) or 10000
local ROUNDS = tonumber(arg and arg[3]) or 5

local t0 = uv.hrtime()
if kind == "trio" then
  local trio = require "trio"
  trio.run(function()
    for _ = 1, ROUNDS do
      local built = trio.Event()
      local function level(d)
        if d == 0 then
          built:set()
          trio.sleep_forever()
        end
        trio.open_nursery(function(n) n:start_soon(level, d - 1) end)
      end
      trio.open_nursery(function(n)
        n:start_soon(level, D)
        built:wait()
        n.cancel_scope:cancel()
      end)
    end
  end)
else
  local asyncio = require "asyncio"
  asyncio.run(function()
    local loop = asyncio.get_running_loop()
    for _ = 1, ROUNDS do
      local built = asyncio.Event()
      local function level(d)
        if d == 0 then
          built:set()
          return loop:create_future():await()
        end
        return asyncio.create_task(level, d - 1):await()
      end
      local top = asyncio.create_task(level, D)
      built:wait()
      top:cancel()
      local ok = pcall(top.await, top)
      assert(not ok and top:cancelled(), "W12: the chain was not cancelled")
    end
  end)
end
local dt = (uv.hrtime() - t0) / 1e9
print(string.format("W12 nesting (%s) D=%d x %d wall=%.3fs: %.6g levels/s",
  kind, D, ROUNDS, dt, D * ROUNDS / dt))
print(string.format("RESULT %.6g levels/s", D * ROUNDS / dt))
