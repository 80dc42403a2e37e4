-- W4's floor in Lua: what one coroutine per timer costs with no scheduler.
-- N coroutines, coroutine i sleeps (i % 1000) / 10000 s as in
-- bench/w4_timers.lua; each yields its deadline once and is kept in one of
-- 1000 buckets (one per distinct deadline, the cheapest timer structure
-- there is for this workload), and the buckets are resumed in order, each
-- once its deadline has passed (luv's clock; uv.sleep while more than a
-- millisecond away).
-- usage: lua5.4 bench/w4_timers_rawco.lua [N=100000]
-- Metric: overhead = wall time of the whole run - 0.1 s (lower is better).
local uv = require "luv"
local N = tonumber(arg and arg[1]) or 100000

local t0 = uv.hrtime()
local buckets = {}
for b = 0, 999 do buckets[b] = {} end
local function sleeper(delay) coroutine.yield(delay) end
for i = 1, N do
  local co, delay = coroutine.create(sleeper), (i % 1000) / 10000
  local _, yielded = coroutine.resume(co, delay)
  assert(yielded == delay)
  local bucket = buckets[i % 1000]
  bucket[#bucket + 1] = co
end
for b = 0, 999 do
  local due = t0 + b * 100000 -- ns: b / 10000 s
  local left = due - uv.hrtime()
  if left > 1e6 then uv.sleep(left // 1e6) end
  while uv.hrtime() < due do end
  local bucket = buckets[b]
  for k = 1, #bucket do
    assert(coroutine.resume(bucket[k]))
    bucket[k] = false
  end
end
local dt = (uv.hrtime() - t0) / 1e9
print(string.format("W4 timers raw Lua coroutines N=%d wall=%.3fs overhead: %.6g s", N, dt, dt - 0.1))
print(string.format("RESULT %.6g s", dt - 0.1))
