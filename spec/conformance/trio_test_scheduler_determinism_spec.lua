-- Ported from Trio's src/trio/_tests/test_scheduler_determinism.py
-- (python-trio/trio at 60d0c2f84854ec6ef74995663dcdce3296840485).
--
-- Upstream checks that Trio's scheduler is not deterministic (it shuffles
-- each batch of runnable tasks, python-trio/trio#32) unless its private
-- random generator is seeded.  Ours runs each batch in FIFO order, always
-- (docs/SEMANTICS.md, "The scheduler is deterministic"), so:
-- test_the_trio_scheduler_is_not_deterministic is adapted to check the
-- opposite, and what order the batches run in;
-- test_the_trio_scheduler_is_deterministic_if_seeded is adapted: there is
-- no seed to set, and the traces are all the same without one.
local trio = require "trio"
local H = require "conformance.trio_helpers"

local P = "_tests/test_scheduler_determinism.py::"

-- scheduler_trace: five tasks each record 50 steps, with a checkpoint
-- between steps; returns the order of the steps as one string.
local function scheduler_trace()
  local trace = {}
  local function tracer(name)
    for i = 0, 49 do
      trace[#trace + 1] = name .. ":" .. i
      trio.lowlevel.checkpoint()
    end
  end
  trio.open_nursery(function(nursery)
    for i = 0, 4 do nursery:start_soon(tracer, tostring(i)) end
  end)
  return table.concat(trace, " ")
end

local function distinct(traces)
  local seen, n = {}, 0
  for _, t in ipairs(traces) do
    if not seen[t] then seen[t], n = true, n + 1 end
  end
  return n
end

describe("Trio test_scheduler_determinism.py", function()
  -- adapted: ten runs give one trace (upstream: ten different ones), and
  -- that trace is the tasks in spawn order, round after round
  it(P .. "test_the_trio_scheduler_is_not_deterministic", function()
    local traces = {}
    for i = 1, 10 do traces[i] = H.run(scheduler_trace) end
    assert.equal(1, distinct(traces))
    local want = {}
    for round = 0, 49 do
      for task = 0, 4 do want[#want + 1] = task .. ":" .. round end
    end
    assert.equal(table.concat(want, " "), traces[1])
  end)

  -- adapted: no seed is needed for ten runs to agree
  it(P .. "test_the_trio_scheduler_is_deterministic_if_seeded", function()
    local traces = {}
    for i = 1, 10 do traces[i] = H.run(scheduler_trace) end
    assert.equal(10, #traces)
    assert.equal(1, distinct(traces))
  end)
end)
