-- W2 at scale: P concurrent ping-pong pairs, M round trips in all (M / P
-- each, at least 1), so the scheduler's working set grows with P while the
-- work stays the same.  "trio": two rendezvous channels per pair, as
-- bench/w2_pingpong.lua; "asyncio": two asyncio.Queue(1) per pair, as
-- bench/w2_pingpong_asyncio.lua.
-- usage: lua5.4 bench/w2_pairs.lua [trio|asyncio] [P=10000] [M=200000]
-- Metric: round trips/s = total round trips / wall time of the whole run.
local uv = require "luv" -- a wall clock
local kind = arg and arg[1] or "trio"
local P = tonumber(arg and arg[2]) or 10000
local M = tonumber(arg and arg[3]) or 200000
local R = math.max(1, M // P) -- round trips per pair

local function check(i, v)
  if v ~= i + 1 then error(("W2: expected %d, got %s"):format(i + 1, tostring(v))) end
end

local t0 = uv.hrtime()
if kind == "trio" then
  local trio = require "trio"
  trio.run(function()
    trio.open_nursery(function(nursery)
      for _ = 1, P do
        local req_tx, req_rx = trio.open_memory_channel(0)
        local rep_tx, rep_rx = trio.open_memory_channel(0)
        nursery:start_soon(function() -- server
          for _ = 1, R do rep_tx:send(req_rx:receive() + 1) end
        end)
        nursery:start_soon(function() -- client
          for i = 1, R do
            req_tx:send(i)
            check(i, rep_rx:receive())
          end
        end)
      end
    end)
  end)
else
  local asyncio = require "asyncio"
  asyncio.run(function()
    local tasks = {}
    for _ = 1, P do
      local req, rep = asyncio.Queue(1), asyncio.Queue(1)
      tasks[#tasks + 1] = asyncio.create_task(function() -- server
        for _ = 1, R do rep:put(req:get() + 1) end
      end)
      tasks[#tasks + 1] = asyncio.create_task(function() -- client
        for i = 1, R do
          req:put(i)
          check(i, rep:get())
        end
      end)
    end
    asyncio.gather(table.unpack(tasks))
  end)
end
local dt = (uv.hrtime() - t0) / 1e9
print(string.format("W2 %s P=%d pairs x %d round trips wall=%.3fs: %.6g round trips/s",
  kind, P, R, dt, P * R / dt))
print(string.format("RESULT %.6g round trips/s", P * R / dt))
