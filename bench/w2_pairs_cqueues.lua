-- W2 at scale on cqueues (reference for bench/w2_pairs.lua): P concurrent
-- ping-pong pairs, M round trips in all, each pair as the peers'
-- w2_pingpong_cqueues.lua (a one-slot mailbox plus a condition each way).
-- usage: lua5.4 bench/w2_pairs_cqueues.lua [P=10000] [M=200000]
-- Metric: round trips/s = total round trips / wall time of the whole loop.
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local P = tonumber(arg and arg[1]) or 10000
local M = tonumber(arg and arg[2]) or 200000
local R = math.max(1, M // P) -- round trips per pair

local t0 = cqueues.monotime()
local cq = cqueues.new()
for _ = 1, P do
  local req_cv, rep_cv = condition.new(), condition.new()
  local req, rep -- the two mailboxes
  cq:wrap(function() -- server: answer each request with request + 1
    for _ = 1, R do
      while req == nil do req_cv:wait() end
      rep, req = req + 1, nil
      rep_cv:signal()
    end
  end)
  cq:wrap(function() -- client
    for i = 1, R do
      req = i
      req_cv:signal()
      while rep == nil do rep_cv:wait() end
      assert(rep == i + 1)
      rep = nil
    end
  end)
end
assert(cq:loop())
local dt = cqueues.monotime() - t0
print(string.format("W2 cqueues P=%d pairs x %d round trips wall=%.3fs: %.6g round trips/s",
  P, R, dt, P * R / dt))
print(string.format("RESULT %.6g round trips/s", P * R / dt))
