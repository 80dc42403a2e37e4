-- W11 I/O latency under load: how long a ready socket waits to be seen while
-- the loop is busy.  B callbacks stay queued the whole time (each one
-- re-queues itself with loop:call_soon); a writer task sends one byte on a
-- socketpair every 2 ms (K samples) and a reader task blocked in
-- loop:sock_recv takes the time from just before the send to its wake-up.
-- "trio": the same with B Trio tasks looping on trio.sleep(0) as the load
-- and a Trio task in sock:recv as the reader.
-- usage: lua5.4 bench/w11_io_latency.lua [asyncio|trio] [B=100000] [K=50]
-- Metric: median latency in ms (lower is better); the loop's own policy
-- decides when it polls (docs/ARCHITECTURE.md, "I/O polling under load").
local uv = require "luv" -- a wall clock
local kind = arg and arg[1] or "asyncio"
local B = tonumber(arg and arg[2]) or 100000
local K = tonumber(arg and arg[3]) or 50

local samples, sent_at = {}, nil
local function record() samples[#samples + 1] = (uv.hrtime() - sent_at) / 1e6 end

if kind == "trio" then
  local trio = require "trio"
  trio.run(function()
    local a, b = trio.socket.socketpair()
    trio.open_nursery(function(nursery)
      local done = false
      for _ = 1, B do
        nursery:start_soon(function() while not done do trio.sleep(0) end end)
      end
      nursery:start_soon(function()
        for _ = 1, K do
          assert(b:recv(1) == "x")
          record()
        end
        done = true
      end)
      for _ = 1, K do
        trio.sleep(0.002)
        sent_at = uv.hrtime()
        a:send("x")
      end
    end)
    a:close()
    b:close()
  end)
else
  local asyncio = require "asyncio"
  asyncio.run(function()
    local loop = asyncio.get_running_loop()
    local a, b = asyncio.socket.socketpair()
    local done = false
    local function filler() if not done then loop:call_soon(filler) end end
    for _ = 1, B do loop:call_soon(filler) end
    local reader = asyncio.create_task(function()
      for _ = 1, K do
        assert(loop:sock_recv(b, 1) == "x")
        record()
      end
      done = true
    end)
    for _ = 1, K do
      asyncio.sleep(0.002)
      sent_at = uv.hrtime()
      loop:sock_sendall(a, "x")
    end
    reader:await()
    a:close()
    b:close()
  end)
end
table.sort(samples)
local med = samples[(#samples + 1) // 2]
print(string.format("W11 I/O latency (%s) B=%d K=%d: median %.3f ms, max %.3f ms",
  kind, B, K, med, samples[#samples]))
print(string.format("RESULT %.6g ms", med))
