-- trio.run, trio.lowlevel.run, sleeping and the clock.
local trio = require "trio"
local support = require "support"
local core = require "trio_asyncio.core"
local errof, assert_has = support.errof, support.assert_has

local function index_of(list, v)
  for i, x in ipairs(list) do if x == v then return i end end
  return nil
end

describe("trio.run", function()
  it("returns every result of fn", function()
    local a, b, c = trio.run(function() return 1, "two", 3 end)
    assert.same({ 1, "two", 3 }, { a, b, c })
  end)

  it("keeps nil holes and the result count", function()
    assert.equal(3, select("#", trio.run(function() return nil, 2, nil end)))
    assert.equal(0, select("#", trio.run(function() end)))
  end)

  it("passes the extra arguments to fn", function()
    local got = table.pack(trio.run(function(...) return ... end, "a", nil, 3))
    assert.equal(3, got.n)
    assert.same({ "a", nil, 3 }, { got[1], got[2], got[3] })
  end)

  it("raises a plain string error of the root task unchanged", function()
    local e = errof(trio.run, function() error("boom", 0) end)
    assert.equal("boom", e)
  end)

  it("raises the very same error table that the root task raised", function()
    local mine = setmetatable({ code = 42 }, { __tostring = function() return "mine" end })
    local e = errof(trio.run, function() trio.sleep(0) error(mine) end)
    assert.equal(mine, e)
  end)

  it("raises an error raised after several checkpoints", function()
    local e = errof(trio.run, function()
      for _ = 1, 5 do trio.sleep(0) end
      error("late", 0)
    end)
    assert.equal("late", e)
  end)

  it("can be called many times in a row", function()
    for i = 1, 20 do
      assert.equal(i * 2, trio.run(function(x) trio.sleep(0) return x * 2 end, i))
    end
  end)

  it("works again after a run that failed", function()
    errof(trio.run, function() error("first", 0) end)
    assert.equal("ok", trio.run(function() trio.sleep(0) return "ok" end))
  end)

  it("refuses to nest inside a running trio.run, naming the caller's line", function()
    local line
    local ok, e = trio.run(function()
      line = debug.getinfo(1, "l").currentline + 1
      local ok, e = pcall(function() trio.run(function() return "inner" end) end)
      trio.sleep(0)
      return ok, e
    end)
    assert.is_false(ok)
    assert_has(e, "trio_run_spec.lua:" .. line .. ": trio.run: a run is already active")
    assert_has(e, "open a nursery instead")
  end)

  it("returns only after the root's nursery children finished", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(n)
        n:start_soon(function() trio.sleep(0.02) log[#log + 1] = "child" end)
      end)
      log[#log + 1] = "root"
    end)
    assert.same({ "child", "root" }, log)
  end)

  it("raises an ExceptionGroup when the root's nursery fails", function()
    local e = errof(trio.run, function()
      trio.open_nursery(function(n) n:start_soon(function() error("kid", 0) end) end)
    end)
    assert.is_true(trio.ExceptionGroup:is(e))
    assert.same({ "kid" }, e.exceptions)
  end)
end)

describe("trio.lowlevel.run", function()
  it("runs fn with args and returns its results", function()
    local a, b = trio.lowlevel.run { fn = function(x, y) trio.sleep(0) return y, x end, args = { 1, 2 } }
    assert.same({ 2, 1 }, { a, b })
  end)

  it("runs fn without args", function()
    assert.equal("done", trio.lowlevel.run { fn = function() return "done" end })
  end)

  it("raises fn's error", function()
    local e = errof(trio.lowlevel.run, { fn = function() error("low", 0) end })
    assert.equal("low", e)
  end)
end)

describe("trio.sleep", function()
  it("sleep(0) lets other tasks run", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(n)
        for _, name in ipairs { "a", "b" } do
          n:start_soon(function()
            log[#log + 1] = name .. "1"
            trio.sleep(0)
            log[#log + 1] = name .. "2"
          end)
        end
      end)
    end)
    assert.equal(4, #log)
    for _, first in ipairs { "a1", "b1" } do
      for _, second in ipairs { "a2", "b2" } do
        assert.is_true(index_of(log, first) < index_of(log, second),
          table.concat(log, ","))
      end
    end
  end)

  it("sleeps at least the requested time, and not much longer", function()
    local dt = trio.run(function()
      local t0 = trio.current_time()
      trio.sleep(0.05)
      return trio.current_time() - t0
    end)
    assert.is_true(dt >= 0.049, "slept only " .. dt)
    assert.is_true(dt < 2, "slept " .. dt)
  end)

  it("accepts a fractional sleep shorter than a millisecond", function()
    local dt = trio.run(function()
      local t0 = trio.current_time()
      trio.sleep(0.0001)
      return trio.current_time() - t0
    end)
    assert.is_true(dt >= 0.0001 - 1e-9 and dt < 2, "slept " .. dt)
  end)

  it("wakes sleepers with the same deadline in the order they went to sleep", function()
    local log = {}
    trio.run(function()
      local deadline = trio.current_time() + 0.02
      trio.open_nursery(function(n)
        -- interleave other deadlines so the heap has to reorder entries
        for i = 1, 60 do
          n:start_soon(function()
            if i % 3 == 0 then trio.sleep_until(deadline + 0.01) else trio.sleep_until(deadline) end
            log[#log + 1] = i
          end)
        end
      end)
    end)
    local expected = {}
    for i = 1, 60 do if i % 3 ~= 0 then expected[#expected + 1] = i end end
    for i = 3, 60, 3 do expected[#expected + 1] = i end
    assert.same(expected, log)
  end)

  -- Sleepers with seeded deadlines (many ties) that log when they wake;
  -- some sleep in a scope (with a deadline at first) that the test moves.
  local function sleepers(seed)
    local f = { log = {}, expected = {}, cancelled = {}, scopes = {} }
    function f.rand(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n end
    -- starts task i in nursery n: sleeps until d, in a scope when scope_deadline
    function f.start(n, i, d, scope_deadline)
      f.expected[#f.expected + 1] = { d = d, i = i }
      n:start_soon(function()
        if scope_deadline then
          local sc = trio.CancelScope { deadline = scope_deadline }
          f.scopes[#f.scopes + 1] = { sc = sc, i = i, d = d }
          sc:run(function() trio.sleep_until(d) f.log[#f.log + 1] = i end)
          if sc.cancelled_caught then f.cancelled[i] = true end
        else
          trio.sleep_until(d)
          f.log[#f.log + 1] = i
        end
      end)
    end
    -- every sleeper not cancelled woke, in (deadline, arming) order
    function f.assert_order(ncancelled)
      local want, n = {}, 0
      table.sort(f.expected, function(a, b) return a.d < b.d or (a.d == b.d and a.i < b.i) end)
      for _, e in ipairs(f.expected) do if not f.cancelled[e.i] then want[#want + 1] = e.i end end
      for _ in pairs(f.cancelled) do n = n + 1 end
      assert.equal(ncancelled, n)
      assert.same(want, f.log)
    end
    return f
  end

  it("wakes 2,000 sleepers in (deadline, arming) order while deadlines move and sleeps are cancelled", function()
    -- Every fourth task sleeps in a scope whose deadline is moved (earlier,
    -- later, away) while it sleeps, so the heap removes and re-sorts
    -- entries from its middle.
    local f = sleepers(12345)
    local clock = trio.testing.MockClock { autojump_threshold = 0 }
    trio.lowlevel.run {
      clock = clock,
      fn = function()
        local t0 = trio.current_time()
        trio.open_nursery(function(n)
          for i = 1, 2000 do f.start(n, i, t0 + 1 + f.rand(50), i % 4 == 0 and t0 + 1000) end
          trio.testing.wait_all_tasks_blocked()
          for k, s in ipairs(f.scopes) do
            local r = k % 3
            if r == 0 then s.sc.deadline = math.huge -- away: sleeps to its own deadline
            elseif r == 1 then s.sc.deadline = t0 + 0.5 -- earlier than any sleep: cancelled
            else s.sc.deadline = t0 + 2000 end -- later: sleeps to its own deadline
          end
        end)
      end,
    }
    f.assert_order(167) -- the scopes with k % 3 == 1 (500 scopes)
  end)

  -- 6,000 sleepers and 1,500 scope deadlines; the first jump makes about
  -- 3,000 expire at once, which sorts what is left of the heap (after
  -- 1,024 removals of the earliest in a row, with the heap's size limit
  -- lowered to 1,024 entries).  Then, between the sorted
  -- timers: scope deadlines moved (out of the sorted run), scopes whose
  -- new deadline cancels sleeps still in it, and 500 new sleepers, some
  -- with the deadlines of older ones.
  local function burst_keeps_order(clock)
    local f, N, want_cancelled = sleepers(4242), 6000, 0
    -- (the heap sorts a burst from 131,072 entries on by default)
    local sort_min = core.debug_set_heap_sort_min(1024)
    finally(function() core.debug_set_heap_sort_min(sort_min) end)
    trio.lowlevel.run {
      clock = clock,
      fn = function()
        local t0 = trio.current_time()
        trio.open_nursery(function(n)
          for i = 1, N do f.start(n, i, t0 + 1 + f.rand(50), i % 4 == 0 and t0 + 1000) end
          trio.testing.wait_all_tasks_blocked()
          clock:jump(25.5)
          trio.testing.wait_all_tasks_blocked()
          assert.is_true(#f.log > 2500 and #f.log < 3500)
          for k, s in ipairs(f.scopes) do
            local r = k % 3
            if r == 0 then s.sc.deadline = math.huge
            elseif r == 1 then
              s.sc.deadline = t0 + 25.75 -- before every sleep left: cancelled
              if s.d > t0 + 25.5 then want_cancelled = want_cancelled + 1 end
            else s.sc.deadline = t0 + 2000 end
          end
          for j = 1, 500 do f.start(n, N + j, t0 + 26 + f.rand(30)) end
          trio.testing.wait_all_tasks_blocked()
          clock:jump(2000)
        end)
      end,
    }
    assert.is_true(want_cancelled > 200)
    f.assert_order(want_cancelled)
  end

  it("keeps (deadline, arming) order when a burst of expirations sorts the heap", function()
    burst_keeps_order(trio.testing.MockClock())
  end)

  it("keeps that order with deadlines on both sides of zero (a clock of the user's at -30)", function()
    local clock = { t = -30 }
    function clock.start_clock() end
    function clock.current_time(self) return self.t end
    function clock.deadline_to_sleep_time(self, d) return d <= self.t and 0 or 999 end
    function clock.jump(self, dt) self.t = self.t + dt end
    burst_keeps_order(clock)
  end)

  it("wakes sleepers in deadline order", function()
    local log = {}
    trio.run(function()
      trio.open_nursery(function(n)
        for _, d in ipairs { 0.06, 0.02, 0.04 } do
          n:start_soon(function() trio.sleep(d) log[#log + 1] = d end)
        end
      end)
    end)
    assert.same({ 0.02, 0.04, 0.06 }, log)
  end)

  it("many concurrent sleepers all wake", function()
    local count = trio.run(function()
      local c = 0
      trio.open_nursery(function(n)
        for i = 1, 1000 do
          n:start_soon(function() trio.sleep((i % 10) / 1000) c = c + 1 end)
        end
      end)
      return c
    end)
    assert.equal(1000, count)
  end)

  it("is a checkpoint: sleep(0) raises Cancelled in a cancelled scope", function()
    local e = trio.run(function()
      local err
      local s = trio.CancelScope()
      s:cancel()
      s:run(function()
        local _, e2 = pcall(trio.sleep, 0)
        err = e2
      end)
      return err
    end)
    assert.is_true(trio.Cancelled:is(e))
  end)
  it("sleep(math.huge) sleeps until cancelled", function()
    local caught = trio.run(function()
      return trio.move_on_after(0.01, trio.sleep, math.huge).cancelled_caught
    end)
    assert.is_true(caught)
  end)
end)

describe("trio.sleep_until", function()
  it("returns once current_time reached the deadline", function()
    local now, target = trio.run(function()
      local t = trio.current_time() + 0.05
      trio.sleep_until(t)
      return trio.current_time(), t
    end)
    assert.is_true(now >= target - 0.001, ("woke at %f for %f"):format(now, target))
    assert.is_true(now < target + 2)
  end)

  it("returns promptly for a deadline in the past", function()
    local dt = trio.run(function()
      local t0 = trio.current_time()
      trio.sleep_until(t0 - 100)
      return trio.current_time() - t0
    end)
    assert.is_true(dt < 1)
  end)
end)

describe("trio.sleep_forever", function()
  it("sleeps until cancelled", function()
    local log = {}
    trio.run(function()
      local scope = trio.move_on_after(0.02, function()
        trio.sleep_forever()
        log[#log + 1] = "unreachable"
      end)
      log[#log + 1] = scope.cancelled_caught
    end)
    assert.same({ true }, log)
  end)
end)

describe("trio.current_time", function()
  it("is a number that never goes backwards", function()
    local ok = trio.run(function()
      local prev = trio.current_time()
      assert.equal("number", type(prev))
      for _ = 1, 200 do
        trio.sleep(0)
        local t = trio.current_time()
        if t < prev then return false end
        prev = t
      end
      return true
    end)
    assert.is_true(ok)
  end)

  it("advances across a real sleep", function()
    local t0, t1 = trio.run(function()
      local a = trio.current_time()
      trio.sleep(0.02)
      return a, trio.current_time()
    end)
    assert.is_true(t1 > t0)
  end)
end)

describe("Ctrl-C during trio.run", function()
  local function run_script(body)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(("package.path = %q\npackage.cpath = %q\n"):format(package.path, package.cpath))
    f:write([[
local trio = require "trio"
local sf = assert(io.open("/proc/self/stat"))
local pid = sf:read("l"):match("^(%d+)")
sf:close()
local function interrupt_soon()
  os.execute("(sleep 0.2; kill -INT " .. pid .. ") >/dev/null 2>&1 &")
end
]])
    f:write(body)
    f:close()
    local p = io.popen("timeout 20 lua5.4 " .. path .. " 2>&1; echo \"exit=$?\"")
    local out = p:read("a")
    p:close()
    os.remove(path)
    return out
  end

  it("raises trio.KeyboardInterrupt in the main task instead of killing the process", function()
    local out = run_script([[
local ok, e = pcall(trio.run, function()
  interrupt_soon()
  trio.sleep(10)
  print("NOT INTERRUPTED")
end)
print("ok=" .. tostring(ok), "ki=" .. tostring(trio.KeyboardInterrupt:is(e)))
]])
    assert_has(out, "ok=false")
    assert_has(out, "ki=true")
    assert_has(out, "exit=0")
    assert.is_nil(out:find("NOT INTERRUPTED", 1, true))
  end)

  it("cancels the other tasks of the run", function()
    local out = run_script([[
local ok, e = pcall(trio.run, function()
  trio.open_nursery(function(n)
    n:start_soon(function()
      local ok2, e2 = pcall(trio.sleep, 10)
      print("child cancelled=" .. tostring(trio.Cancelled:is(e2)))
      error(e2, 0)
    end)
    interrupt_soon()
    trio.sleep(10)
  end)
end)
local function has_ki(x)
  if trio.KeyboardInterrupt:is(x) then return true end
  if trio.ExceptionGroup:is(x) then
    for _, s in ipairs(x.exceptions) do if has_ki(s) then return true end end
  end
  return false
end
print("ok=" .. tostring(ok), "ki=" .. tostring(has_ki(e)))
]])
    assert_has(out, "child cancelled=true")
    assert_has(out, "ok=false")
    assert_has(out, "ki=true")
    assert_has(out, "exit=0")
  end)

  it("asyncio.run raises asyncio's KeyboardInterrupt itself, not a group of Trio internals", function()
    local out = run_script([[
local asyncio = require "asyncio"
local ok, e = pcall(asyncio.run, function()
  interrupt_soon()
  asyncio.sleep(10)
  print("NOT INTERRUPTED")
end)
print("ok=" .. tostring(ok), "ki=" .. tostring(trio.KeyboardInterrupt:is(e)))
]])
    assert_has(out, "ok=false")
    assert_has(out, "ki=true")
    assert_has(out, "exit=0")
    assert.is_nil(out:find("NOT INTERRUPTED", 1, true))
  end)
end)

describe("to-be-closed variables in a task's own function", function()
  local function closer(log, name)
    return setmetatable({}, { __close = function(_, err) log[#log + 1] = name .. ":" .. tostring(err) end })
  end

  it("are closed when the task fails, with its error", function()
    local log = {}
    local ok, err = pcall(trio.run, function()
      local _ <close> = closer(log, "main")
      error("boom", 0)
    end)
    assert.is_false(ok)
    assert.equal("boom", err)
    assert.same({ "main:boom" }, log)
  end)

  it("are closed when a child task is cancelled", function()
    local log = {}
    pcall(trio.run, function()
      trio.open_nursery(function(n)
        n:start_soon(function()
          local _ <close> = closer(log, "child")
          trio.sleep_forever()
        end)
        trio.sleep(0)
        n.cancel_scope:cancel()
      end)
    end)
    assert.equal(1, #log)
    assert.truthy(log[1]:find("^child:trio.Cancelled"))
  end)
end)
