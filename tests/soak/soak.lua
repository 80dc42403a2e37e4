--- soak.lua [SECONDS [WARMUP]]: a mixed workload for SECONDS seconds
-- (default 20): both flavors, the bridge, sync loops, timers, channels,
-- locks and cancellation storms, round after round.  After WARMUP seconds
-- (default a fifth of the run, at least 2), it samples the resident set
-- (/proc/self/statm) and the open file descriptors (/proc/self/fd) after
-- each round, with a full collection first; it fails (exit 1) if either
-- grew beyond a small bound by the end:
--
--   RSS: the median of the last 5 samples may exceed the median of the
--        first 5 by at most max(4 MB, 10 %);
--   fds: no more at the end than at the start of sampling.
--
-- Run it with the optimized build (make soak): sanitizers keep freed
-- memory in quarantine, which hides the figure this measures.
local trio = require "trio"
local asyncio = require "asyncio"
local ta = require "trio_asyncio"
local lfs = require "lfs"

local SECONDS = tonumber(arg[1]) or 20
local WARMUP = tonumber(arg[2]) or math.max(2, SECONDS / 5)

local page = 4096
do
  local p = io.popen("getconf PAGESIZE 2>/dev/null")
  page = tonumber(p:read("a")) or page
  p:close()
end

local function rss()
  local f = assert(io.open("/proc/self/statm"))
  local _, resident = f:read("n", "n")
  f:close()
  return resident * page
end

local function fds()
  local n = 0
  for _ in lfs.dir("/proc/self/fd") do n = n + 1 end
  return n
end

local R = math.random
math.randomseed(tonumber(os.getenv("SOAK_SEED") or "") or 1)

local function check(cond, what)
  if not cond then error("soak: " .. what, 2) end
end

-- ---------------------------------------------------------------------
-- the workloads; each returns normally or raises (a soak failure)

local function trio_round()
  return trio.run(function()
    local send, recv = trio.open_memory_channel(R(0, 4))
    local lock, ev, total, n = trio.Lock(), trio.Event(), 0, 200
    trio.open_nursery(function(nursery)
      for p = 1, 4 do
        nursery:start_soon(function(s)
          local _ <close> = s
          for i = 1, n / 4 do s:send(i) end
        end, send:clone())
      end
      send:close()
      nursery:start_soon(function()
        for v in recv:iter() do total = total + v end
        ev:set()
      end)
      for _ = 1, 10 do nursery:start_soon(function() lock:with(trio.sleep, 0) end) end
      -- cancellation storm: scopes cancelled while their tasks sleep, wait
      -- on an event, or hold the lock
      for _ = 1, 20 do
        nursery:start_soon(function()
          trio.move_on_after(R() * 0.002, function()
            local k = R(3)
            if k == 1 then trio.sleep(1)
            elseif k == 2 then ev:wait() trio.sleep(1)
            else lock:with(trio.sleep, 1) end
          end)
        end)
      end
      ev:wait()
    end)
    check(total == 4 * (n / 4) * (n / 4 + 1) / 2, "channel total")
    check(not lock:locked(), "lock left held")
    -- a nursery whose child fails: the error comes out as a group
    local ok, err = pcall(trio.open_nursery, function(nursery)
      nursery:start_soon(function() trio.sleep(0.001) error("soak child error") end)
      trio.sleep(1)
    end)
    check(not ok and trio.ExceptionGroup:is(err), "child error lost")
    check(trio.TooSlowError:is(select(2, pcall(trio.fail_after, 0.001, trio.sleep, 1))), "fail_after")
  end)
end

local function asyncio_round()
  return asyncio.run(function()
    local loop = asyncio.get_running_loop()
    local fs = {}
    for i = 1, 20 do fs[i] = function() asyncio.sleep(R() * 0.002) return i end end
    local r = asyncio.gather(table.unpack(fs))
    check(r.n == 20 and r[20] == 20, "gather")
    local q = asyncio.Queue(3)
    local producer = asyncio.create_task(function() for i = 1, 50 do q:put(i) end end)
    local sum = 0
    for _ = 1, 50 do sum = sum + q:get() end
    producer:await()
    check(sum == 1275, "queue")
    -- timers scheduled and cancelled
    local hs = {}
    for i = 1, 50 do hs[i] = loop:call_later(R() * 0.01, function() end) end
    for i = 1, 50, 2 do hs[i]:cancel() end
    -- tasks cancelled while they sleep or wait
    local ts = {}
    for i = 1, 20 do ts[i] = asyncio.create_task(function() asyncio.sleep(1) end) end
    asyncio.sleep(0.001)
    for _, t in ipairs(ts) do t:cancel() end
    for _, t in ipairs(ts) do pcall(t.await, t) end
    local timed_out = not pcall(asyncio.wait_for, function() asyncio.sleep(1) end, 0.001)
    check(timed_out, "wait_for")
    local fut = loop:create_future()
    loop:call_soon(function() fut:set_result(7) end)
    check(fut:await() == 7, "future")
  end)
end

local function bridge_round()
  return ta.run(function()
    local loop = ta.current_loop()
    for i = 1, 30 do
      local v = ta.aio_as_trio(function()
        asyncio.sleep(0)
        return ta.trio_as_aio(function() trio.sleep(0) return i end)()
      end)()
      check(v == i, "bridge value")
    end
    -- Trio cancels asyncio work and asyncio cancels Trio work
    for _ = 1, 10 do
      trio.move_on_after(R() * 0.002, ta.aio_as_trio(function() asyncio.sleep(1) end))
      local fut = loop:run_trio(function() trio.sleep(1) end)
      loop:call_later(R() * 0.002, function() fut:cancel() end)
      pcall(ta.run_aio_future, fut)
    end
    -- a nested loop, opened and closed
    ta.open_loop(function(inner)
      local f = inner:create_future()
      inner:call_later(0.001, f.set_result, f, 1)
      check(ta.run_aio_future(f) == 1, "nested loop")
    end)
  end)
end

local function sync_loop_round()
  local loop = asyncio.new_event_loop()
  for i = 1, 3 do
    local v = loop:run_until_complete(function()
      asyncio.sleep(0.001)
      return ta.trio_as_aio(function() trio.sleep(0) return i end)()
    end)
    check(v == i, "sync loop value")
  end
  loop:close()
end

local workloads = {
  { "trio", trio_round }, { "asyncio", asyncio_round }, { "bridge", bridge_round }, { "sync loop", sync_loop_round },
}

-- ---------------------------------------------------------------------

local function median(t, from, to)
  local s = {}
  for i = from, to do s[#s + 1] = t[i] end
  table.sort(s)
  return s[(#s + 1) // 2]
end

local function clock() return trio.run(trio.current_time) end

-- Only what the verdict needs is kept (the first 5 and the last 5 RSS
-- samples, the peaks, the first and last fd counts): a list of every
-- sample would itself grow the heap (2 MB after an hour).
local start = clock()
local rounds, n = 0, 0
local first5, last5, peak = {}, {}, 0
local fd_first, fd_last, fd_peak
local sampling = false
while clock() - start < SECONDS do
  for _, w in ipairs(workloads) do
    local ok, err = pcall(w[2])
    if not ok then
      print(("soak: FAILED in the %s workload (round %d): %s"):format(w[1], rounds + 1, tostring(err)))
      os.exit(1)
    end
  end
  collectgarbage(rounds % 2 == 0 and "generational" or "incremental")
  rounds = rounds + 1
  if clock() - start >= WARMUP then
    sampling = true
    collectgarbage("collect")
    collectgarbage("collect")
    local r, f = rss(), fds()
    n = n + 1
    if n <= 5 then first5[n] = r end
    last5[(n - 1) % 5 + 1] = r
    if r > peak then peak = r end
    fd_first, fd_last = fd_first or f, f
    if fd_peak == nil or f > fd_peak then fd_peak = f end
  end
end

if not sampling or n < 10 then
  print(("soak: only %d samples in %g s (after %g s of warm-up): run longer"):format(n, SECONDS, WARMUP))
  os.exit(n >= 2 and 0 or 1)
end
local first, last = median(first5, 1, 5), median(last5, 1, 5)
local bound = math.max(4 * 1024 * 1024, first // 10)
print(("soak: %d rounds in %.0f s (%d samples after %.0f s of warm-up)"):format(rounds, clock() - start, n, WARMUP))
print(("soak: RSS %.1f MB at the start of sampling, %.1f MB at the end, %.1f MB peak (bound +%.1f MB)")
  :format(first / 2 ^ 20, last / 2 ^ 20, peak / 2 ^ 20, bound / 2 ^ 20))
print(("soak: open fds %d at the start of sampling, %d at the end, %d peak"):format(fd_first, fd_last, fd_peak))
local failed = false
if last - first > bound then
  print("soak: FAILED: the resident set grew")
  failed = true
end
if fd_last > fd_first then
  print("soak: FAILED: file descriptors leak")
  failed = true
end
if failed then os.exit(1) end
print("soak: flat")
