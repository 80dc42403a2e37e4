-- W3 callbacks: a chain of N loop:call_soon callbacks, each scheduling the
-- next.  "plain": a standalone loop (run_until_complete); "bridged": a loop
-- opened with trio_asyncio.open_loop inside a Trio run (W6b).
-- usage: lua5.4 bench/w3_callbacks.lua [plain|bridged] [N=1000000]
-- Metric: callbacks/s over the whole chain.
local asyncio = require "asyncio"
local has_luv, uv = pcall(require, "luv") -- luv only as a wall clock
local now = has_luv and function() return uv.hrtime() / 1e9 end or os.time

local kind = arg and arg[1] or "plain"
local N = tonumber(arg and arg[2]) or 1000000

local function chain(loop)
  local count, done = 0, loop:create_future()
  local function cb()
    count = count + 1
    if count < N then loop:call_soon(cb) else done:set_result(count) end
  end
  loop:call_soon(cb)
  return done
end

local t0 = now()
if kind == "bridged" then
  local ta = require "trio_asyncio"
  ta.run(function() ta.run_aio_future(chain(ta.current_loop())) end)
else
  local loop = asyncio.new_event_loop()
  loop:run_until_complete(chain(loop))
  loop:close()
end
local dt = now() - t0
print(string.format("W3 call_soon chain (%s) N=%d wall=%.3fs: %.6g callbacks/s", kind, N, dt, N / dt))
print(string.format("RESULT %.6g callbacks/s", N / dt))
